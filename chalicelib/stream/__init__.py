"""The stream dispatcher: DynamoDB stream records as plain Python values, routed by event type."""

from chalicelib.stream.dispatcher import DispatchReport, RecordFailure, RecordOutcome, StreamDispatcher
from chalicelib.stream.record import EventName, MalformedRecord, StreamRecord

__all__ = [
    "DispatchReport",
    "EventName",
    "MalformedRecord",
    "RecordFailure",
    "RecordOutcome",
    "StreamDispatcher",
    "StreamRecord",
]
