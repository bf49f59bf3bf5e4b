"""One shell for every consumer: consumers return an `Outcome`; `ConsumerRuntime.deliver` finishes it.

A consumer (replication, fan-out, orders, ingest) plans and applies a batch and *returns* what happened:
what was applied, the dead letters, the records to leave in their queue, and exact counts. It sends no
letter and answers nothing. `deliver` is the one place an outcome is finished:

1. its letters are stored (`DeadLetterQueue.send`);
2. Lambda is answered, correctly with and without ReportBatchItemFailures:
   - a stream: every record is applied or dead-lettered, so the answer is an empty `batchItemFailures`;
     a letter that could not be stored makes it raise `DeadLetterQueueUnavailable` (Lambda delivers the
     batch again: nothing is dropped);
   - a queue: nothing left → empty answer; otherwise the finished messages are deleted here and it raises
     `RetryLater`, so exactly the others come back (an answer naming them would be ignored, and the whole
     batch deleted, where ReportBatchItemFailures is off);
3. the invocation is logged once: one INFO summary, one WARNING per dead-lettered record (by eventID or
   messageId), and one ERROR line when a systemic fault was seen (its codes and counts, no record data);
4. its metrics are emitted once, as one EMF document on stdout (SPEC "Observability"), on every path,
   answered or raised.

Redrive calls `process` and reads the Outcome without delivering it: a letter that fails again is not
sent anywhere, it stays in its dead-letter queue.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple, Protocol, TypedDict

from chalicelib.clock import Clock, utc_now
from chalicelib.config import DEFAULT_METRICS_NAMESPACE
from chalicelib.dead_letters import DeadLetter, DeadLetterQueue, DeadLetterQueueUnavailable, LetterDelivery
from chalicelib.faults import Failure, Fault, letter_reason
from chalicelib.observability import metrics
from chalicelib.retry import CallStats
from chalicelib.source_queue import SourceQueue

logger = logging.getLogger(__name__)


class BatchResponse(TypedDict):
    """Lambda's partial-batch answer; always empty here (see the module docstring)."""

    batchItemFailures: list[dict[str, str]]


class SystemicFault(NamedTuple):
    """A systemic error as the logs and metrics name it."""

    operation: str
    code: str


class RetryLater(RuntimeError):
    """Some messages must come back (a passing or systemic failure): they stay in their queue.

    `remaining`: messages left for a later delivery; `undeleted`: finished ones whose delete failed (they
    come back too, harmlessly)."""

    def __init__(self, message: str, remaining: int, undeleted: int):
        super().__init__(message)
        self.remaining = remaining
        self.undeleted = undeleted


@dataclass
class Outcome:
    """What one consumer did with one batch. Counts are exact; `deliver` adds its own requests."""

    consumer: str
    records: list[Any]
    applied: int = 0  # written, published, processed or stored
    skipped: int = 0  # needed nothing (an event type a consumer ignores, an order already processed)
    letters: list[DeadLetter] = field(default_factory=list)
    left: list[tuple[Any, Failure]] = field(default_factory=list)  # to come back from their queue
    aws_calls: int = 0
    retries: int = 0
    systemic: Counter[SystemicFault] = field(default_factory=Counter)  # records each systemic error failed
    oldest_created_at: datetime | None = None  # of the batch's stream records (stream lag)
    details: dict[str, int] = field(default_factory=dict)  # consumer-specific counts for the summary line
    dead_lettered: int = 0  # letters stored, once delivered

    @property
    def records_in(self) -> int:
        """Records in the batch."""
        return len(self.records)

    def dead_letter(self, record: Any, failure: Failure, attempts: int) -> None:
        """Give `record` up for `failure` after `attempts` attempts (reason per the fault model)."""
        self.letters.append(DeadLetter(self.consumer, letter_reason(failure, attempts), failure.text, attempts,
                                       record))
        self.note(failure)

    def reject(self, record: Any, reason: str, error: str) -> None:
        """Give `record` up before any AWS call (malformed, invalid): attempts 0."""
        self.letters.append(DeadLetter(self.consumer, reason, error, 0, record))

    def leave(self, record: Any, failure: Failure) -> None:
        """Leave `record` in its queue, to be delivered again (queue consumers only)."""
        self.left.append((record, failure))
        self.note(failure)

    def count(self, stats: CallStats) -> None:
        """Add an adapter's requests and retries."""
        self.aws_calls += stats.calls
        self.retries += stats.retries

    def saw_created(self, created_at: datetime | None) -> None:
        """Keep the oldest creation time of the batch's records."""
        if created_at is not None and (self.oldest_created_at is None or created_at < self.oldest_created_at):
            self.oldest_created_at = created_at

    def note(self, failure: Failure) -> None:
        """Count a systemic failure (the ERROR line and the metrics name it)."""
        if failure.fault is Fault.SYSTEMIC:
            self.systemic[SystemicFault(failure.operation, failure.code)] += 1


class Consumer(Protocol):
    """Plans and applies one batch, returning what happened (it sends no letter)."""

    def process(self, records: Sequence[Any]) -> Outcome: ...


class ConsumerRuntime:
    """Runs a consumer on a Lambda batch and delivers its outcome (`source_queue`: for SQS event sources).

    `metrics_namespace`: where its EMF metrics go; `clock`: the invocation's time (StreamLagMs, timestamp).
    """

    def __init__(self, consumer: Consumer, dead_letters: DeadLetterQueue, source_queue: SourceQueue | None = None,
                 *, metrics_namespace: str = DEFAULT_METRICS_NAMESPACE, clock: Clock = utc_now):
        self.consumer = consumer
        self._dead_letters = dead_letters
        self._source_queue = source_queue
        self._metrics_namespace = metrics_namespace
        self._clock = clock

    def process(self, records: Sequence[Any]) -> Outcome:
        """The consumer's outcome for `records`, not delivered (redrive reads it)."""
        return self.consumer.process(list(records))

    def handle(self, records: Sequence[Any]) -> BatchResponse:
        """Process one Lambda batch and deliver the outcome."""
        return self.deliver(self.process(records))

    def deliver(self, outcome: Outcome) -> BatchResponse:
        """Store the letters, answer Lambda, log the invocation: where every outcome is finished."""
        before = self._dead_letters.stats.copy()
        delivery = self._dead_letters.send(outcome.letters)
        outcome.count(self._dead_letters.stats - before)
        outcome.dead_lettered = len(delivery.stored)
        if self._source_queue is None:
            return self._answer_stream(outcome, delivery)
        return self._answer_queue(outcome, delivery, self._source_queue)

    def _answer_stream(self, outcome: Outcome, delivery: LetterDelivery) -> BatchResponse:
        for _, failure in delivery.failed:
            outcome.note(failure)
        self._finished(outcome, delivery)
        if delivery.failed:
            codes = ", ".join(sorted({failure.code for _, failure in delivery.failed}))
            raise DeadLetterQueueUnavailable(f"{len(delivery.failed)} dead letter(s) could not be stored in "
                                             f"{self._dead_letters.queue_url}: {codes}")
        # Every record is applied or dead-lettered: Lambda must not deliver any of them again.
        return {"batchItemFailures": []}

    def _answer_queue(self, outcome: Outcome, delivery: LetterDelivery, source: SourceQueue) -> BatchResponse:
        for letter, failure in delivery.failed:  # a letter that cannot be stored: its message stays instead
            outcome.leave(letter.record, failure)
        if not outcome.left:
            self._finished(outcome, delivery)
            return {"batchItemFailures": []}
        left = {id(record) for record, _ in outcome.left}
        before = source.stats.copy()
        undeleted = source.delete([record for record in outcome.records if id(record) not in left])
        outcome.count(source.stats - before)
        for not_deleted in undeleted:
            logger.warning("%s: finished message not deleted (it comes back, harmlessly): %s", outcome.consumer,
                           not_deleted.error, extra={"consumer": outcome.consumer, "messageId": not_deleted.message_id})
        self._finished(outcome, delivery)
        causes = Counter(letter_reason(failure, 1) if failure.fault is Fault.SYSTEMIC
                         else f"{failure.operation or 'request'}: {failure.text}" for _, failure in outcome.left)
        message = (f"{len(outcome.left)} of {outcome.records_in} message(s) remain in the queue for retry: "
                   + "; ".join(f"{count} × {cause}" for cause, count in causes.items()))
        if undeleted:
            message += f" ({len(undeleted)} finished message(s) could not be deleted and will be delivered again)"
        raise RetryLater(message, len(outcome.left), len(undeleted))

    def _finished(self, outcome: Outcome, delivery: LetterDelivery) -> None:
        """Log and measure a delivered outcome, once per invocation, on every path (answered or raised)."""
        _log(outcome, delivery)
        try:
            metrics.emit(outcome.consumer, metrics_of(outcome), self._clock(), self._metrics_namespace)
        except Exception as error:  # a metric must never cost a delivery: Lambda would deliver the batch again
            logger.error("%s: metrics not emitted: %s: %s", outcome.consumer, type(error).__name__, error,
                         extra={"consumer": outcome.consumer})


def record_ids(record: Any) -> dict[str, str]:
    """What names a record in a log line: its eventID (streams) or messageId (queues); never its data."""
    if not isinstance(record, Mapping):
        return {}
    for name in ("eventID", "messageId"):
        if isinstance(record.get(name), str):
            return {name: record[name]}
    return {}


def metrics_of(outcome: Outcome) -> metrics.ConsumerMetrics:
    """A delivered outcome's metrics (pure): its counts are final once its letters are stored."""
    return metrics.ConsumerMetrics(records_in=outcome.records_in, applied=outcome.applied,
                                   dead_lettered=outcome.dead_lettered, retries=outcome.retries,
                                   aws_calls=outcome.aws_calls, oldest_created_at=outcome.oldest_created_at)


def _log(outcome: Outcome, delivery: LetterDelivery) -> None:
    """The invocation's log lines: one WARNING per dead-lettered record, the ERROR of systemic faults, the summary."""
    consumer = {"consumer": outcome.consumer}
    for letter in delivery.stored:
        if not letter.reason.startswith("systemic:"):  # systemic letters are counted in the ERROR line below
            logger.warning("%s: record dead-lettered: %s", outcome.consumer, letter.reason,
                           extra={**consumer, **record_ids(letter.record)})
    if outcome.systemic:
        faults = ", ".join(f"{fault.code} on {fault.operation or 'a request'} ({count} record(s))"
                           for fault, count in sorted(outcome.systemic.items()))
        logger.error("%s: systemic fault, not retried: %s; %d dead-lettered, %d left in the queue, %d not stored",
                     outcome.consumer, faults, outcome.dead_lettered, len(outcome.left), len(delivery.failed),
                     extra=consumer)
    details = "".join(f", {count} {name}" for name, count in outcome.details.items())
    logger.info("%s: %d record(s): %d applied, %d skipped, %d dead-lettered, %d left in the queue%s; "
                "%d AWS call(s), %d retried", outcome.consumer, outcome.records_in, outcome.applied, outcome.skipped,
                outcome.dead_lettered, len(outcome.left), details, outcome.aws_calls, outcome.retries, extra=consumer)


def records_of(event: Any) -> list[Any]:
    """The raw `Records` list of a Lambda event (a dict or a Chalice event object)."""
    as_dict = event.to_dict() if hasattr(event, "to_dict") else event
    if not isinstance(as_dict, Mapping):
        return []
    records = as_dict.get("Records")
    return list(records) if isinstance(records, list) else []
