"""Replication consumer: stream records → coalesced BatchWriteItem on the target table → dead letters."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from chalicelib.batch_writer import BatchWriter, KeyIdentity, WriteFailure, WriteOp
from chalicelib.consumer_runtime import Outcome
from chalicelib.dead_letters import describe_error
from chalicelib.replication.projection import TARGET_KEY_NAMES, TargetWrite, plan_writes
from chalicelib.stream.dispatcher import StreamDispatcher
from chalicelib.stream.record import StreamRecord

CONSUMER = "replication"

dispatcher = StreamDispatcher(CONSUMER)
dispatcher.on_insert(plan_writes)
dispatcher.on_modify(plan_writes)
dispatcher.on_remove(plan_writes)


def to_write_op(write: TargetWrite) -> WriteOp:
    """The BatchWriteItem request for one planned target write.

    The stream path puts exactly the projection (SPEC: a target item holds state, city, email, active,
    city_email), unconditionally: stream order is authoritative. Replays write the current source item's
    projection and confirm it against the source afterwards (see replay.py).
    """
    if write.item is None:
        return WriteOp.delete(write.key.as_key(), TARGET_KEY_NAMES)
    return WriteOp.put(write.item, TARGET_KEY_NAMES)  # typed anew: the planned item is never shared


class ReplicationConsumer:
    """Applies a batch of users-stream records to the target table; returns what happened (letters included)."""

    def __init__(self, writer: BatchWriter):
        self._writer = writer

    def process(self, raw_records: Sequence[Any]) -> Outcome:
        """Plan every record's target writes, write them, and dead-letter the records whose writes failed."""
        outcome = Outcome(CONSUMER, list(raw_records))
        report = dispatcher.dispatch(outcome.records)
        for rejected in report.failures:
            outcome.reject(rejected.raw, rejected.reason, describe_error(rejected.error))

        ops: list[WriteOp] = []
        writer_of: dict[KeyIdentity, StreamRecord] = {}
        for planned in report.outcomes:
            outcome.saw_created(planned.record.created_at)
            for write in planned.results[0]:
                op = to_write_op(write)
                ops.append(op)
                writer_of[op.identity] = planned.record  # the last record to touch a key owns its write

        before = self._writer.stats.copy()
        # One letter per record (by identity: hand-built records may lack eventID and SequenceNumber alike).
        failed: dict[int, tuple[StreamRecord, WriteFailure]] = {}
        for not_written in self._writer.write(ops):
            record = writer_of[not_written.op.identity]
            failed.setdefault(id(record), (record, not_written))
        outcome.count(self._writer.stats - before)
        for record, not_written in failed.values():
            outcome.dead_letter(record.raw, not_written.failure, not_written.attempts)
        outcome.applied = len(report.outcomes) - len(failed)
        outcome.details["target write(s)"] = len(ops)
        return outcome
