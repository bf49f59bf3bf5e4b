"""Fan-out consumer: users-stream records → one EventBridge event each → dead letters for what is left.

Every record of a batch ends up published or in STREAM_DLQ_URL, so the handler reports no batch item
failures; only a dead-letter queue that refuses the letters makes it raise (Lambda then retries the
batch, and the events already published are published again: delivery is at least once).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from chalicelib.clock import Clock, utc_now
from chalicelib.config import DEFAULT_EVENT_SOURCE
from chalicelib.dead_letters import DeadLetter, DeadLetterQueue, describe_error
from chalicelib.fanout.events import EventTooLarge, FanoutEntry, build_entry
from chalicelib.fanout.publisher import EventPublisher, PublishFailure
from chalicelib.stream.dispatcher import HandlerError, StreamDispatcher
from chalicelib.stream.record import StreamRecord

logger = logging.getLogger(__name__)

CONSUMER = "fanout"


def failure_reason(failure: PublishFailure) -> str:
    """The dead letter's `reason` for a publish failure."""
    if failure.retryable:
        return f"PutEvents failed after {failure.attempts} attempt(s)"
    return "PutEvents rejected the event"


class FanoutConsumer:
    """Publishes a batch of stream records to the event bus; what cannot be published is dead-lettered."""

    def __init__(self, publisher: EventPublisher, dead_letters: DeadLetterQueue,
                 source: str = DEFAULT_EVENT_SOURCE, table: str = "", clock: Clock = utc_now):
        self._publisher = publisher
        self._dead_letters = dead_letters
        self._source = source
        self._table = table  # the stream's table, for records that lack eventSourceARN
        self._clock = clock
        self._received_at: datetime | None = None  # for records that lack ApproximateCreationDateTime
        self._dispatcher = StreamDispatcher(CONSUMER)
        self._dispatcher.on_insert(self._entry_for)
        self._dispatcher.on_modify(self._entry_for)
        self._dispatcher.on_remove(self._entry_for)

    def _entry_for(self, record: StreamRecord) -> FanoutEntry:
        try:
            return build_entry(record, self._source, table=self._table, received_at=self._received_at)
        except EventTooLarge as error:
            raise HandlerError(str(error)) from error
        except (TypeError, ValueError) as error:  # e.g. a number DynamoDB cannot hold (NaN) in a forged image
            raise HandlerError(f"malformed stream record: image has no JSON form: {error}") from error

    def handle(self, raw_records: Iterable[Any]) -> dict[str, list[Any]]:
        """Process one Lambda batch. Raises only when dead letters cannot be stored."""
        self._received_at = self._clock()
        report = self._dispatcher.dispatch(raw_records)
        # Nothing was sent for these records: attempts 0.
        letters = [
            DeadLetter(CONSUMER, failure.reason, describe_error(failure.error), 0, failure.raw)
            for failure in report.failures
        ]
        entries: list[FanoutEntry] = [outcome.results[0] for outcome in report.outcomes]
        failures = self._publisher.publish(entries)
        letters.extend(
            DeadLetter(CONSUMER, failure_reason(failure), failure.error, failure.attempts, failure.entry.record.raw)
            for failure in failures
        )
        if letters:
            logger.warning("fanout: %d record(s) dead-lettered", len(letters))
            self._dead_letters.send(letters)  # raises if the DLQ is unavailable: Lambda retries the batch
        truncated = sum(1 for entry in entries if entry.truncated)
        logger.info("fanout: %d record(s), %d published (%d truncated), %d dead letter(s), %d PutEvents call(s)",
                    len(entries) + len(report.failures), self._publisher.published, truncated, len(letters),
                    self._publisher.calls)
        # Failures are in the DLQ, so nothing is reported back: Lambda must not replay them.
        return {"batchItemFailures": []}
