"""Fan-out consumer: users-stream records → one EventBridge event each; what cannot be published → letters.

Every record of a batch ends up published or dead-lettered (the runtime stores the letters), so the
handler reports no batch item failures; only a dead-letter queue that refuses the letters makes it raise
(Lambda then retries the batch, and the events already published are published again: at least once).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from chalicelib.clock import Clock, utc_now
from chalicelib.config import DEFAULT_EVENT_SOURCE
from chalicelib.consumer_runtime import Outcome
from chalicelib.dead_letters import describe_error
from chalicelib.fanout.events import DEFAULT_MAX_BYTES, EventTooLarge, FanoutEntry, build_entry
from chalicelib.fanout.publisher import EventPublisher
from chalicelib.stream.dispatcher import HandlerError, StreamDispatcher
from chalicelib.stream.record import StreamRecord

CONSUMER = "fanout"


class FanoutConsumer:
    """Publishes a batch of stream records to the event bus; returns what happened (letters included)."""

    def __init__(self, publisher: EventPublisher, source: str = DEFAULT_EVENT_SOURCE, table: str = "",
                 clock: Clock = utc_now, max_bytes: int = DEFAULT_MAX_BYTES):
        self._publisher = publisher
        self._source = source
        self._table = table  # the stream's table, for records that lack eventSourceARN
        self._clock = clock
        self._max_bytes = max_bytes  # EVENT_MAX_BYTES: an entry over it is sent truncated
        self._received_at: datetime | None = None  # for records that lack ApproximateCreationDateTime
        self._dispatcher = StreamDispatcher(CONSUMER)
        self._dispatcher.on_insert(self._entry_for)
        self._dispatcher.on_modify(self._entry_for)
        self._dispatcher.on_remove(self._entry_for)

    def _entry_for(self, record: StreamRecord) -> FanoutEntry:
        try:
            return build_entry(record, self._source, table=self._table, received_at=self._received_at,
                               max_bytes=self._max_bytes)
        except EventTooLarge as error:
            raise HandlerError(str(error)) from error
        except (TypeError, ValueError) as error:  # e.g. a number DynamoDB cannot hold (NaN) in a forged image
            raise HandlerError(f"malformed stream record: image has no JSON form: {error}") from error

    def process(self, raw_records: Sequence[Any]) -> Outcome:
        """Build one event per record, publish them, and dead-letter what could not be published."""
        outcome = Outcome(CONSUMER, list(raw_records))
        self._received_at = self._clock()
        report = self._dispatcher.dispatch(outcome.records)
        for rejected in report.failures:  # nothing was sent for these records: attempts 0
            outcome.reject(rejected.raw, rejected.reason, describe_error(rejected.error))
        entries: list[FanoutEntry] = [planned.results[0] for planned in report.outcomes]
        for entry in entries:
            outcome.saw_created(entry.record.created_at)
        before = self._publisher.stats.copy()
        failures = self._publisher.publish(entries)
        outcome.count(self._publisher.stats - before)
        for failure in failures:
            outcome.dead_letter(failure.entry.record.raw, failure.failure, failure.attempts)
        outcome.applied = len(entries) - len(failures)
        outcome.details["truncated"] = sum(1 for entry in entries if entry.truncated)
        return outcome
