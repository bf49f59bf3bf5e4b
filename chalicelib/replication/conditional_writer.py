"""The conditional writer: guarded writes (`chalicelib.replication.planning`) as conditional PutItem/DeleteItem.

Every request goes through the one retry primitive (`chalicelib.retry`) and is judged by the one classifier
(`chalicelib.faults`): throttling, 5xx and connection trouble are retried with backoff; a failed condition
means the target holds newer data (SUPERSEDED); an item's fault, or retries that ran out, fail that write
(FAILED, with its Failure); a systemic fault (access denied, a missing table) is raised at once as botocore
raised it, since every write after it would meet the same wall. Reads raise their errors as botocore raised them.

A put guarded by its source is confirmed afterwards: the users are read again in one BatchGetItem, and an
item whose user no longer projects to its key (moved or deleted between our read and our write, its stream
record already applied) is deleted again, only if it is still exactly what we wrote. A newer stream write
there always stays.

Why not TransactWriteItems with a ConditionCheck on the source? It would close the milliseconds in which
a resurrected item is visible before its undo, at twice the write capacity per item; conditional single
writes cost 1 WCU and batch their confirmation reads by 100.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import partial
from typing import Any

from chalicelib.backoff import Backoff
from chalicelib.faults import Failure, Fault
from chalicelib.replication.planning import GuardedWrite, TargetCondition, target_condition
from chalicelib.replication.projection import TargetKey, target_key
from chalicelib.retry import CallStats, GaveUp, retry_call, retry_pending, retry_request
from chalicelib.stream.images import plain_item, typed_item

MAX_BATCH_GET = 100
UNPROCESSED_KEYS = Failure(Fault.RETRYABLE, "UnprocessedKeys", "DynamoDB left the key unread", "BatchGetItem")
CONDITION_FAILED = "ConditionalCheckFailedException"


class Outcome(StrEnum):
    """What happened to one guarded write."""

    APPLIED = "applied"
    SUPERSEDED = "superseded"          # the target holds newer data (or not what was seen): left alone
    SOURCE_CHANGED = "source changed"  # the user left the key since it was read: undone, re-plan
    FAILED = "failed"                  # refused for the item's fault, or still failing after every retry


@dataclass(frozen=True)
class WriteResult:
    """One guarded write's outcome; a FAILED one carries its Failure and the attempts made."""

    write: GuardedWrite
    outcome: Outcome
    failure: Failure | None = None
    attempts: int = 0

    @property
    def error(self) -> str:
        """`Code: message` of a failed write ("" otherwise)."""
        return self.failure.text if self.failure is not None else ""


class ConditionalTargetWriter:
    """Applies guarded writes as conditional PutItem/DeleteItem, confirming the source of guarded puts.

    `calls` counts every DynamoDB request (reads included) for tests and benchmarks. `before_write`, when
    set, is called with each write before it is sent (a write-rate limit: `ops backfill --max-wcu`).
    """

    before_write: Callable[[GuardedWrite], None] | None = None

    def __init__(self, dynamodb: Any, users_table: str, target_table: str, backoff: Backoff | None = None):
        self._dynamodb = dynamodb
        self.users_table = users_table
        self.target_table = target_table
        self._backoff = backoff or Backoff(max_attempts=8)
        self.stats = CallStats()

    @property
    def calls(self) -> int:
        """DynamoDB requests made so far (reads included)."""
        return self.stats.calls

    # --- reads ---------------------------------------------------------------------------------------

    def read_source(self, email: str) -> dict[str, Any] | None:
        """The current source item (strongly consistent), or None."""
        answer = retry_request(partial(self._dynamodb.get_item, TableName=self.users_table,
                                       Key=typed_item({"email": email}), ConsistentRead=True),
                               self._backoff, self.stats)
        return plain_item(answer["Item"]) if "Item" in answer else None

    def existing_keys(self, keys: Sequence[TargetKey]) -> set[TargetKey]:
        """Which of `keys` have a target item."""
        typed = [typed_item(key.as_key()) for key in dict.fromkeys(keys)]
        found = self._batch_get(self.target_table, typed, {"#s": "state", "#k": "city_email"})
        return {TargetKey(item["state"], item["city_email"]) for item in found}

    def read_targets(self, keys: Sequence[TargetKey]) -> dict[TargetKey, dict[str, Any]]:
        """The target items at `keys` (those that exist), by key."""
        typed = [typed_item(key.as_key()) for key in dict.fromkeys(keys)]
        found = self._batch_get(self.target_table, typed)
        return {TargetKey(item["state"], item["city_email"]): item for item in found}

    def read_sources(self, emails: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The current source items of `emails` (those that exist), by email."""
        typed = [typed_item({"email": email}) for email in dict.fromkeys(emails)]
        return {item["email"]: item for item in self._batch_get(self.users_table, typed)}

    def _batch_get(self, table: str, keys: list[dict[str, Any]],
                   projection: dict[str, str] | None = None) -> list[dict[str, Any]]:
        """Strongly consistent BatchGetItem, ≤ 100 keys per call, unprocessed keys retried with backoff."""
        found: list[dict[str, Any]] = []

        def send(chunk: list[dict[str, Any]]) -> list[tuple[dict[str, Any], Failure]]:
            request: dict[str, Any] = {"Keys": chunk, "ConsistentRead": True}
            if projection:
                request.update(ProjectionExpression=", ".join(projection), ExpressionAttributeNames=projection)
            answer = self._dynamodb.batch_get_item(RequestItems={table: request})
            found.extend(plain_item(item) for item in answer.get("Responses", {}).get(table, []))
            return [(key, UNPROCESSED_KEYS) for key in answer.get("UnprocessedKeys", {}).get(table, {}).get("Keys", [])]

        given_up = retry_pending(keys, send, self._backoff, self.stats, requests=lambda pending: [
            pending[start:start + MAX_BATCH_GET] for start in range(0, len(pending), MAX_BATCH_GET)])
        if given_up:
            raised = [f.error for f in given_up if f.error is not None]
            if raised:
                raise raised[0]  # as botocore raised it (callers name the error)
            raise RuntimeError(f"BatchGetItem left {len(given_up)} key(s) unprocessed after retries")
        return found

    # --- writes --------------------------------------------------------------------------------------

    def create_missing(self, writes: Sequence[GuardedWrite]) -> list[WriteResult]:
        """The bulk path of backfill and repairs: skip items already present (one BatchGetItem per 100),
        create the others where none exists, and confirm their sources."""
        present = self.existing_keys([write.key for write in writes])
        results = [WriteResult(w, Outcome.SUPERSEDED) if w.key in present else self._single(w) for w in writes]
        return self._confirm_sources(results)

    def apply(self, writes: Sequence[GuardedWrite]) -> list[WriteResult]:
        """Apply every write in order and confirm the sources of guarded puts (results in input order)."""
        return self._confirm_sources([self._single(write) for write in writes])

    def _confirm_sources(self, results: list[WriteResult]) -> list[WriteResult]:
        """Undo applied puts whose user no longer projects to their key; those become SOURCE_CHANGED."""
        landed = [r.write for r in results
                  if r.outcome is Outcome.APPLIED and r.write.source is not None and r.write.item is not None]
        if not landed:
            return results
        sources = self.read_sources([write.source.email for write in landed if write.source is not None])
        undone: set[TargetKey] = set()
        for write in landed:
            assert write.source is not None and write.item is not None
            if target_key(sources.get(write.source.email)) == write.key:
                continue  # a change of other fields is newer than our read: its stream record follows
            undo = self._single(GuardedWrite(write.key, None, TargetCondition.unchanged(write.item)))
            if undo.outcome is Outcome.FAILED:
                raise RuntimeError(f"could not undo a write at {write.key.as_key()}: {undo.error}")
            undone.add(write.key)
        return [WriteResult(r.write, Outcome.SOURCE_CHANGED)
                if r.outcome is Outcome.APPLIED and r.write.key in undone and r.write.source is not None else r
                for r in results]

    def _single(self, write: GuardedWrite) -> WriteResult:
        params = target_condition(write.condition)
        if self.before_write is not None:
            self.before_write(write)
        if write.item is None:
            request = partial(self._dynamodb.delete_item, TableName=self.target_table,
                              Key=typed_item(write.key.as_key()), **params)
        else:
            request = partial(self._dynamodb.put_item, TableName=self.target_table, Item=typed_item(write.item),
                              **params)
        try:
            retry_call(request, self._backoff, self.stats)
        except GaveUp as gave_up:
            if gave_up.failure.code == CONDITION_FAILED:
                return WriteResult(write, Outcome.SUPERSEDED)
            if gave_up.failure.fault is Fault.SYSTEMIC and gave_up.__cause__ is not None:
                raise gave_up.__cause__ from None
            return WriteResult(write, Outcome.FAILED, gave_up.failure, gave_up.attempts)
        return WriteResult(write, Outcome.APPLIED)
