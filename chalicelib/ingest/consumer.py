"""Ingest consumer: one SQS batch → DEVICE_METADATA_TABLE (valid), INGEST_DLQ_URL (invalid), the queue (the rest).

What fails for a passing cause (throttling past the retries) or a systemic one (access denied, no such
table) is left in the queue, never dead-lettered as if it were invalid: the consumer runtime deletes the
finished messages itself and then raises, instead of answering `batchItemFailures`. Chalice cannot turn
ReportBatchItemFailures on for an SQS event source mapping, and this code cannot know whether someone
did. With it OFF, Lambda ignores the answer: any non-error return deletes the whole batch, including the
messages that failed, so they would be lost. Raising is read the same way in both modes (an invocation
error returns every message not yet deleted to the queue), and deleting the finished messages first means
only the failed ones come back: nothing lost, nothing applied twice without need. A finished message whose
delete fails comes back too, which is harmless: its item key is derived from its id and send time.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from chalicelib.batch_writer import BatchWriter, KeyIdentity, WriteOp
from chalicelib.clock import Clock, utc_now
from chalicelib.consumer_runtime import Outcome
from chalicelib.faults import Fault
from chalicelib.ingest.messages import ITEM_KEY_NAMES, DeviceSighting, Rejection, parse_message

CONSUMER = "ingest"


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


class IngestConsumer:
    """Stores valid messages and dead-letters invalid ones; what fails for a passing or systemic cause is left
    in the queue (the runtime deletes the finished messages and fails the invocation)."""

    def __init__(self, writer: BatchWriter, clock: Clock = utc_now):
        self._writer = writer
        self._clock = clock

    def process(self, records: Sequence[Any]) -> Outcome:
        """Validate and store one SQS batch; return what happened."""
        outcome = Outcome(CONSUMER, list(records))
        plan = plan_batch(outcome.records, self._clock())
        for record, rejection in plan.rejections:  # invalid: never written, never retried
            outcome.reject(record, rejection.reason, rejection.error)
        ops: list[WriteOp] = []
        records_of_key: dict[KeyIdentity, list[Any]] = {}
        for record, sighting in plan.sightings:
            op = WriteOp.put(sighting.to_item(), ITEM_KEY_NAMES)
            ops.append(op)
            # One message delivered twice in a batch is one key: the writer coalesces, both records share the fate.
            records_of_key.setdefault(op.identity, []).append(record)
        before = self._writer.stats.copy()
        failures = self._writer.write(ops)
        outcome.count(self._writer.stats - before)
        not_written = set()
        for failure in failures:
            not_written.add(failure.op.identity)
            for record in records_of_key[failure.op.identity]:
                if failure.failure.fault is Fault.ITEM:  # DynamoDB refuses this item: it will never be stored
                    outcome.dead_letter(record, failure.failure, failure.attempts)
                else:  # throttled past the retries, or systemic: it comes back from the queue
                    outcome.leave(record, failure.failure)
        outcome.applied = sum(len(rs) for key, rs in records_of_key.items() if key not in not_written)
        return outcome
