"""Replication consumer: stream records → coalesced BatchWriteItem on the target table → dead letters."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from chalicelib.batch_writer import BatchWriter, KeyIdentity, WriteOp
from chalicelib.dead_letters import DeadLetter, DeadLetterQueue, describe_error
from chalicelib.replication.projection import TARGET_KEY_NAMES, TargetWrite, plan_writes
from chalicelib.stream.dispatcher import StreamDispatcher
from chalicelib.stream.record import StreamRecord

logger = logging.getLogger(__name__)

CONSUMER = "replication"

dispatcher = StreamDispatcher(CONSUMER)
dispatcher.on_insert(plan_writes)
dispatcher.on_modify(plan_writes)
dispatcher.on_remove(plan_writes)


def to_write_op(write: TargetWrite) -> WriteOp:
    """The BatchWriteItem request for one planned target write.

    The stream path puts exactly the projection (SPEC: a target item holds state, city, email, active,
    city_email): stream order is authoritative, so it needs no `source_sequence` stamp, and a stream put
    replaces any stamp a replay left. Replays treat an unstamped item as older than themselves and confirm
    what they wrote against the current source item (see replay.py).
    """
    if write.item is None:
        return WriteOp.delete(write.key.as_key(), TARGET_KEY_NAMES)
    return WriteOp.put(dict(write.item), TARGET_KEY_NAMES)


class ReplicationConsumer:
    """Applies a batch of users-stream records to the target table; what fails is dead-lettered."""

    def __init__(self, writer: BatchWriter, dead_letters: DeadLetterQueue):
        self._writer = writer
        self._dead_letters = dead_letters

    def handle(self, raw_records: Iterable[Any]) -> dict[str, list[Any]]:
        """Process one Lambda batch. Raises only when dead letters cannot be stored."""
        report = dispatcher.dispatch(raw_records)
        letters = [
            DeadLetter(CONSUMER, failure.reason, describe_error(failure.error), 1, failure.raw)
            for failure in report.failures
        ]

        ops: list[WriteOp] = []
        writer_of: dict[KeyIdentity, StreamRecord] = {}
        for outcome in report.outcomes:
            for write in outcome.results[0]:
                op = to_write_op(write)
                ops.append(op)
                writer_of[op.identity] = outcome.record  # the last record to touch a key owns its write

        # One letter per record (by identity: hand-built records may lack eventID and SequenceNumber alike).
        failed_records: dict[int, tuple[StreamRecord, str, int]] = {}
        for failure in self._writer.write(ops):
            record = writer_of[failure.op.identity]
            failed_records.setdefault(id(record), (record, failure.error, failure.attempts))
        letters.extend(
            DeadLetter(CONSUMER, "target write failed after retries", error, attempts, record.raw)
            for record, error, attempts in failed_records.values()
        )
        if letters:
            logger.warning("replication: %d record(s) dead-lettered", len(letters))
            self._dead_letters.send(letters)  # raises if the DLQ is unavailable: Lambda retries the batch
        logger.info("replication: %d record(s), %d target write(s), %d dead letter(s), %d BatchWriteItem call(s)",
                    len(report.outcomes) + len(report.failures), len(ops), len(letters), self._writer.calls)
        # Failures are in the DLQ, so nothing is reported back: Lambda must not replay them.
        return {"batchItemFailures": []}
