"""Lambda's on-failure records for stream batches, and re-reading the records they name.

When a stream consumer keeps raising (only when even its dead-letter queue is unavailable), Lambda
gives up after the mapping's retries and sends its own failure record to the OnFailure destination,
the stream DLQ (see infra/merge-template.yaml). That record names a shard and a sequence range
(`DDBStreamBatchInfo`), not the records themselves, so redrive re-reads the range from the stream,
which keeps records for 24 hours, and replays each record through the consumer the function runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tooling.lambda_shapes import lambda_stream_record

# Lambda function (handler) name in app.py → the consumer it runs.
HANDLER_CONSUMERS = {"replicate_users": "replication", "fanout_users": "fanout", "process_orders": "orders"}
MAX_EMPTY_PAGES = 3
STREAM_RETENTION_HINT = "older than the stream's 24 h retention: use `verify --fix` (replication) or re-run the job"


def consumer_of_function(function_arn: str) -> str | None:
    """`...:function:stream-pipeline-prod-replicate_users[:qualifier]` → `replication`."""
    parts = function_arn.split(":")
    name = parts[6] if len(parts) > 6 else function_arn
    for handler, consumer in HANDLER_CONSUMERS.items():
        if name == handler or name.endswith(f"-{handler}"):
            return consumer
    return None


@dataclass(frozen=True)
class StreamBatchFailure:
    """A batch Lambda gave up on: which consumer, which shard, which sequence range."""

    consumer: str | None
    function_arn: str
    stream_arn: str
    shard_id: str
    start_sequence: str
    end_sequence: str
    batch_size: int

    @classmethod
    def parse(cls, body: Any) -> StreamBatchFailure | None:
        """The failure a message body describes, or None when it is not Lambda's stream failure record."""
        if not isinstance(body, Mapping) or not isinstance(body.get("DDBStreamBatchInfo"), Mapping):
            return None
        info = body["DDBStreamBatchInfo"]
        context = body.get("requestContext")
        if not isinstance(context, Mapping):
            context = {}
        function_arn = str(context.get("functionArn", ""))
        fields = (str(info.get("streamArn", "")), str(info.get("shardId", "")),
                  str(info.get("startSequenceNumber", "")), str(info.get("endSequenceNumber", "")))
        if not all(fields) or not fields[2].isdigit() or not fields[3].isdigit():
            return None
        size = info.get("batchSize", 0)
        return cls(consumer_of_function(function_arn), function_arn, *fields,
                   batch_size=int(size) if isinstance(size, int) else 0)

    @property
    def reason(self) -> str:
        return f"Lambda gave up on a batch of {self.batch_size} record(s) (shard {self.shard_id})"


class StreamBatchReader:
    """Reads a failed batch's records back from the stream, in Lambda's shape. `calls` counts requests."""

    def __init__(self, streams: Any):
        self._streams = streams
        self.calls = 0

    def records(self, failure: StreamBatchFailure) -> list[dict[str, Any]]:
        """The records from start to end sequence number (raises ClientError when the stream lost them)."""
        self.calls += 1
        iterator = self._streams.get_shard_iterator(
            StreamArn=failure.stream_arn, ShardId=failure.shard_id,
            ShardIteratorType="AT_SEQUENCE_NUMBER", SequenceNumber=failure.start_sequence,
        )["ShardIterator"]
        start, end = int(failure.start_sequence), int(failure.end_sequence)
        found: list[dict[str, Any]] = []
        empty_pages = 0
        while iterator and empty_pages < MAX_EMPTY_PAGES:
            self.calls += 1
            answer = self._streams.get_records(ShardIterator=iterator, Limit=1000)
            records = answer.get("Records", [])
            empty_pages = 0 if records else empty_pages + 1  # an open shard may answer empty pages
            for record in records:
                sequence = int(record["dynamodb"]["SequenceNumber"])
                if sequence > end:
                    return found
                if sequence >= start:
                    found.append(lambda_stream_record(record, failure.stream_arn))
            if failure.batch_size and len(found) >= failure.batch_size:
                return found
            iterator = answer.get("NextShardIterator")
        return found
