"""Ingest consumer: one SQS batch → DEVICE_METADATA_TABLE (valid), INGEST_DLQ_URL (invalid), the queue (the rest).

Why it deletes messages itself and then raises, instead of answering `batchItemFailures`:
Chalice cannot turn ReportBatchItemFailures on for an SQS event source mapping, and this code cannot know
whether someone did. With it OFF, Lambda ignores the answer: any non-error return deletes the whole batch,
including the messages that failed, so they would be lost. Raising is read the same way in both modes
(an invocation error returns every message not yet deleted to the queue, whatever the answer would have
been), and deleting the finished messages first means only the failed ones come back: nothing lost,
nothing applied twice without need. A finished message whose delete fails comes back too, which is
harmless: its item key is derived from its id and send time, so writing it again changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypedDict

from chalicelib.batch_writer import BatchWriter, KeyIdentity, WriteOp
from chalicelib.clock import Clock, utc_now
from chalicelib.dead_letters import DeadLetter, DeadLetterQueue, DeadLetterQueueUnavailable
from chalicelib.ingest.messages import ITEM_KEY_NAMES, DeviceSighting, Rejection, parse_message
from chalicelib.ingest.source_queue import Receipt, SourceQueue

logger = logging.getLogger(__name__)

CONSUMER = "ingest"


class BatchResponse(TypedDict):
    """Lambda's partial-batch answer. Always empty: "all done" with ReportBatchItemFailures on, ignored with it
    off (where returning means the same). Failures never travel in it (see the module docstring)."""

    batchItemFailures: list[dict[str, str]]


class IngestRetryLater(RuntimeError):
    """Some messages failed for a passing cause; they stay in the queue and Lambda delivers them again."""

    def __init__(self, remaining: int, total: int, causes: list[str], undeleted: int):
        self.remaining = remaining
        self.undeleted = undeleted
        message = f"{remaining} of {total} message(s) remain in the queue for retry: {'; '.join(causes)}"
        if undeleted:
            message += f" ({undeleted} finished message(s) could not be deleted and will be delivered again)"
        super().__init__(message)


@dataclass
class IngestPlan:
    """What a batch asks for: the sightings to store and the messages to reject, each with its raw record."""

    sightings: list[tuple[Any, DeviceSighting]] = field(default_factory=list)
    rejections: list[tuple[Any, Rejection]] = field(default_factory=list)


def plan_batch(records: Iterable[Any], received_at: datetime | None = None) -> IngestPlan:
    """Validate every record of a batch (pure); `received_at`: see `parse_message`."""
    plan = IngestPlan()
    for record in records:
        parsed = parse_message(record, received_at)
        if isinstance(parsed, Rejection):
            plan.rejections.append((record, parsed))
        else:
            plan.sightings.append((record, parsed))
    return plan


def receipt_of(record: Any) -> Receipt | None:
    """What deleting `record` from its queue needs, or None when the record lacks it."""
    if not isinstance(record, Mapping):
        return None
    handle, arn = record.get("receiptHandle"), record.get("eventSourceARN")
    if not isinstance(handle, str) or not handle or not isinstance(arn, str) or not arn:
        return None
    return Receipt(str(record.get("messageId", "")), handle, arn)


class IngestConsumer:
    """Stores valid messages, dead-letters invalid ones, and leaves only passing failures in the queue."""

    def __init__(self, writer: BatchWriter, dead_letters: DeadLetterQueue, source_queue: SourceQueue,
                 clock: Clock = utc_now):
        self._writer = writer
        self._dead_letters = dead_letters
        self._queue = source_queue
        self._clock = clock

    def handle(self, event: Mapping[str, Any]) -> BatchResponse:
        """Process one Lambda SQS event. Raises IngestRetryLater when some messages must come back."""
        records = list(event.get("Records") or [])
        plan = plan_batch(records, self._clock())
        done: list[Any] = []
        retry: list[Any] = []
        causes: list[str] = []

        written, failed, write_error = self._store(plan.sightings)
        done.extend(written)
        retry.extend(failed)
        if failed:
            causes.append(f"{len(failed)} write(s) failed: {write_error}")

        rejected, kept, dlq_error = self._reject(plan.rejections)
        done.extend(rejected)
        retry.extend(kept)
        if kept:
            causes.append(f"{len(kept)} invalid message(s) not dead-lettered: {dlq_error}")

        logger.info(
            "ingest: %d message(s): %d stored, %d dead-lettered, %d to retry; %d BatchWriteItem call(s)",
            len(records), len(written), len(rejected), len(retry), self._writer.calls,
        )
        if not retry:
            return {"batchItemFailures": []}

        receipts = [receipt for receipt in map(receipt_of, done) if receipt is not None]
        undeleted = self._queue.delete(receipts)
        undeleted_count = len(undeleted) + (len(done) - len(receipts))
        for failure in undeleted:
            logger.warning("ingest: finished message %s not deleted: %s", failure.message_id, failure.error)
        raise IngestRetryLater(len(retry), len(records), causes, undeleted_count)

    def _store(self, sightings: list[tuple[Any, DeviceSighting]]) -> tuple[list[Any], list[Any], str]:
        """Write the sightings; return the records written, the records not written and the last error."""
        if not sightings:
            return [], [], ""
        ops: list[WriteOp] = []
        records_of_key: dict[KeyIdentity, list[Any]] = {}
        for record, sighting in sightings:
            op = WriteOp.put(sighting.to_item(), ITEM_KEY_NAMES)
            ops.append(op)
            # One message delivered twice in a batch is one key: the writer coalesces, both records share the fate.
            records_of_key.setdefault(op.identity, []).append(record)
        failures = self._writer.write(ops)
        failed_keys = {failure.op.identity for failure in failures}
        written = [r for key, rs in records_of_key.items() if key not in failed_keys for r in rs]
        failed = [r for key, rs in records_of_key.items() if key in failed_keys for r in rs]
        return written, failed, failures[-1].error if failures else ""

    def _reject(self, rejections: list[tuple[Any, Rejection]]) -> tuple[list[Any], list[Any], str]:
        """Dead-letter invalid messages; return the records dead-lettered, those that were not, and why."""
        if not rejections:
            return [], [], ""
        letters = [
            (record, DeadLetter(CONSUMER, rejection.reason, rejection.error, 1, record))
            for record, rejection in rejections
        ]
        try:
            self._dead_letters.send([letter for _, letter in letters])
        except DeadLetterQueueUnavailable as error:
            sent = {id(letter) for letter in self._dead_letters.sent}
            return (
                [record for record, letter in letters if id(letter) in sent],
                [record for record, letter in letters if id(letter) not in sent],
                str(error),
            )
        return [record for record, _ in letters], [], ""
