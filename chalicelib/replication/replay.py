"""The replayer: a dead-lettered users-stream record applied again, from the current truth.

It plans (`chalicelib.replication.planning.plan_replay`) from the source item as it is now, applies the
writes through the conditional writer (`chalicelib.replication.conditional_writer`), and plans again when
the truth moved under it: a put undone because the user left its key (SOURCE_CHANGED), or a source whose
projection changed between the first read and the end of the writes (a stream write may have landed in
between, which our writes could have overwritten or deleted).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chalicelib.faults import letter_reason
from chalicelib.replication.conditional_writer import ConditionalTargetWriter, Outcome, WriteResult
from chalicelib.replication.planning import ReplayError, plan_replay, record_email
from chalicelib.replication.projection import project_user
from chalicelib.stream.record import MalformedRecord, StreamRecord


@dataclass(frozen=True)
class ReplayReport:
    """What one replayed record did to the target."""

    results: list[WriteResult]

    @property
    def applied(self) -> int:
        return sum(1 for r in self.results if r.outcome is Outcome.APPLIED)

    @property
    def superseded(self) -> int:
        return sum(1 for r in self.results if r.outcome is Outcome.SUPERSEDED)


class ReplicationReplayer:
    """Replays a users-stream record from a dead letter through the conditional write path."""

    def __init__(self, writer: ConditionalTargetWriter, max_rounds: int = 5):
        self._writer = writer
        self._max_rounds = max_rounds

    def replay(self, raw_record: Any) -> ReplayReport:
        """Apply the record (as the current truth allows); ReplayError when it cannot be applied."""
        try:
            record = StreamRecord(raw_record)
            email = record_email(record)
        except MalformedRecord as error:
            raise ReplayError(f"malformed stream record: {error}") from error
        for _ in range(self._max_rounds):
            current = self._writer.read_source(email)
            try:
                writes = plan_replay(record, current)
            except MalformedRecord as error:
                raise ReplayError(f"malformed stream record: {error}") from error
            results = self._writer.apply(writes)
            failed = [r for r in results if r.outcome is Outcome.FAILED]
            if failed:
                failure = failed[0].failure
                assert failure is not None
                raise ReplayError(f"target write failed: {letter_reason(failure, failed[0].attempts)}")
            if any(r.outcome is Outcome.SOURCE_CHANGED for r in results):
                continue
            # The source held the same projection before and after our writes: whatever the stream applied
            # meanwhile is either what we wrote or will be applied after it. Otherwise a change landed in
            # between (a stream write we may have overwritten or deleted): plan again from the new truth.
            if writes and project_user(self._writer.read_source(email)) != project_user(current):
                continue
            return ReplayReport(results)
        raise ReplayError(f"source item {email} kept changing during replay")
