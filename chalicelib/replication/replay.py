"""Writes to the target from outside stream order — redriven dead letters, backfill, verify --fix.

The stream path writes unconditionally: stream order is authoritative. Everything else comes here, and
never overwrites newer data:

- The truth is the CURRENT source item, read by the record's key, not the record's (maybe stale) image:
  a stale INSERT replayed after a newer delete or move must not resurrect the item.
- A put that depends on the source (a replay, a backfill or repair creating an item) is confirmed
  afterwards: the users are read again in one BatchGetItem, and an item whose user no longer projects
  to its key (moved or deleted between our read and our write, its stream record already applied) is
  deleted again, only if it is still exactly what we wrote. A newer stream write there always stays.
- After a replay's writes the user is read once more: if her projection changed since the first read, a
  stream write may have landed between our read and our writes, so the replay plans again from the new
  truth. Target items hold exactly the projection (no bookkeeping attributes); an item stamped with a
  newer `source_sequence` (written by an earlier version) is still never overwritten or deleted.
- Backfill only creates missing items; a repair only replaces exactly what verify saw.

Why not TransactWriteItems with a ConditionCheck on the source? It would close the milliseconds in which
a resurrected item is visible before its undo, at twice the write capacity per item; conditional single
writes cost 1 WCU and batch their confirmation reads by 100.

Planning (`plan_replay`, `plan_backfill`, `plan_repair`) is pure; `ConditionalTargetWriter` is the adapter.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from botocore.exceptions import ClientError

from chalicelib.backoff import Backoff
from chalicelib.faults import Failure, Fault
from chalicelib.replication.projection import (
    PROJECTED_FIELDS,
    SEQUENCE_ATTRIBUTE,
    TargetKey,
    project_user,
    stored_sequence,
    target_key,
)
from chalicelib.retry import CallStats, GaveUp, retry_call, retry_pending
from chalicelib.stream.images import plain_item, typed_item
from chalicelib.stream.record import MalformedRecord, StreamRecord

MAX_BATCH_GET = 100
UNPROCESSED_KEYS = Failure(Fault.RETRYABLE, "UnprocessedKeys", "DynamoDB left the key unread", "BatchGetItem")


class ReplayError(ValueError):
    """A record that cannot be replayed (no key, no sequence number): the dead letter stays."""


class ConditionKind(StrEnum):
    """What the target item must look like for a write to land."""

    ABSENT = "absent"            # backfill: only create missing items
    OLDER_THAN = "older_than"    # replay: absent, unsequenced, or written by an older record
    UNCHANGED = "unchanged"      # repair: exactly what verify saw (None = absent)


@dataclass(frozen=True)
class TargetCondition:
    """A guard on the target item at the write's key."""

    kind: ConditionKind
    sequence: str = ""                        # OLDER_THAN: stored (padded) sequence of the record
    seen: Mapping[str, Any] | None = None     # UNCHANGED: the item as seen, None = absent

    @classmethod
    def absent(cls) -> TargetCondition:
        return cls(ConditionKind.ABSENT)

    @classmethod
    def older_than(cls, sequence_number: str) -> TargetCondition:
        return cls(ConditionKind.OLDER_THAN, sequence=stored_sequence(sequence_number))

    @classmethod
    def unchanged(cls, seen: Mapping[str, Any] | None) -> TargetCondition:
        return cls(ConditionKind.UNCHANGED, seen=dict(seen) if seen is not None else None)


@dataclass(frozen=True)
class SourceGuard:
    """The source item a put was planned from (None = no item): the put is undone if the user left its key."""

    email: str
    fields: Mapping[str, Any] | None

    @classmethod
    def of(cls, email: str, user: Mapping[str, Any] | None) -> SourceGuard:
        if user is None:
            return cls(email, None)
        return cls(email, {name: user[name] for name in PROJECTED_FIELDS if name in user})


@dataclass(frozen=True)
class GuardedWrite:
    """Put `item` at `key` (delete when None) if `condition` holds; `source`: confirm the user still projects there."""

    key: TargetKey
    item: dict[str, Any] | None
    condition: TargetCondition
    source: SourceGuard | None = None

    @property
    def is_delete(self) -> bool:
        return self.item is None


class Outcome(StrEnum):
    """What happened to one guarded write."""

    APPLIED = "applied"
    SUPERSEDED = "superseded"          # the target holds newer data (or not what was seen): left alone
    SOURCE_CHANGED = "source changed"  # the user left the key since it was read: undone, re-plan
    FAILED = "failed"                  # AWS kept refusing after retries


@dataclass(frozen=True)
class WriteResult:
    write: GuardedWrite
    outcome: Outcome
    error: str = ""


# --- pure planning ------------------------------------------------------------------------------------

def record_email(record: StreamRecord) -> str:
    """The source key of a users-stream record (ReplayError when it has none)."""
    email = record.keys.get("email")
    if not isinstance(email, str) or not email:
        raise ReplayError("record has no email key")
    return email


def _touched_keys(record: StreamRecord, email: str) -> list[TargetKey]:
    keys: list[TargetKey] = []
    for image in (record.old, record.new):
        if image is None:
            continue
        key = target_key({**image, "email": email})
        if key is not None and key not in keys:
            keys.append(key)
    return keys


def plan_replay(record: StreamRecord, current: Mapping[str, Any] | None) -> list[GuardedWrite]:
    """Writes that bring the target keys a record touched to the current truth, never past newer data.

    Keys the record touched that the current item does not project to are deleted unless a newer record
    wrote them; the current projection is put (stamped with the record's sequence) unless a newer record
    wrote it, and only while the source still holds what we read.
    """
    if not record.sequence_number.isdigit():
        raise ReplayError(f"record has no stream sequence number ({record.sequence_number!r})")
    email = record_email(record)
    condition = TargetCondition.older_than(record.sequence_number)
    current_key = target_key(current)
    current_item = project_user(current)
    writes = [
        GuardedWrite(key, None, condition)
        for key in _touched_keys(record, email)
        if key != current_key
    ]
    if current_key is not None and current_item is not None:
        # Exactly the projection, like the stream path writes it (SPEC: a target item holds nothing else).
        writes.append(GuardedWrite(current_key, current_item, condition, SourceGuard.of(email, current)))
    return writes


def plan_backfill(user: Mapping[str, Any]) -> GuardedWrite | None:
    """Create the user's target item if it is missing (never overwrite); None when it has no target."""
    key, item = target_key(user), project_user(user)
    if key is None or item is None:
        return None
    return GuardedWrite(key, item, TargetCondition.absent(), SourceGuard.of(str(user["email"]), user))


def plan_repair(key: TargetKey, source_user: Mapping[str, Any] | None,
                seen: Mapping[str, Any] | None) -> GuardedWrite | None:
    """Make `key` hold the projection of `source_user` (or nothing), if the target still holds `seen`."""
    expected = project_user(source_user) if target_key(source_user) == key else None
    condition = TargetCondition.unchanged(seen)
    if expected is None:
        return GuardedWrite(key, None, condition) if seen is not None else None
    assert source_user is not None
    if seen is None:  # creating: guard the source, or a user who moved away meanwhile would be resurrected
        return GuardedWrite(key, expected, condition, SourceGuard.of(str(source_user["email"]), source_user))
    # Replacing an item that must still be exactly what was seen: if the stream deleted or rewrote it
    # meanwhile the condition fails, and a later change is still on its way through the stream.
    return GuardedWrite(key, expected, condition)


@dataclass
class _Expression:
    names: dict[str, str] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)

    def name(self, attribute: str) -> str:
        placeholder = f"#n{len(self.names)}"
        self.names[placeholder] = attribute
        return placeholder

    def value(self, value: Any) -> str:
        placeholder = f":v{len(self.values)}"
        self.values[placeholder] = value
        return placeholder

    def params(self, expression: str) -> dict[str, Any]:
        params: dict[str, Any] = {"ConditionExpression": expression, "ExpressionAttributeNames": self.names}
        if self.values:
            params["ExpressionAttributeValues"] = typed_item(self.values)
        return params


def _equal_fields(expr: _Expression, fields: Mapping[str, Any], names: Iterable[str]) -> str:
    parts = []
    for name in names:
        if name in fields:
            parts.append(f"{expr.name(name)} = {expr.value(fields[name])}")
        else:
            parts.append(f"attribute_not_exists({expr.name(name)})")
    return " AND ".join(parts)


def target_condition(condition: TargetCondition) -> dict[str, Any]:
    """ConditionExpression parameters for a target write."""
    expr = _Expression()
    if condition.kind is ConditionKind.ABSENT or (condition.kind is ConditionKind.UNCHANGED and condition.seen is None):
        return expr.params(f"attribute_not_exists({expr.name('state')})")
    if condition.kind is ConditionKind.OLDER_THAN:
        state, seq = expr.name("state"), expr.name(SEQUENCE_ATTRIBUTE)
        return expr.params(f"attribute_not_exists({state}) OR attribute_not_exists({seq}) "
                           f"OR {seq} < {expr.value(condition.sequence)}")
    assert condition.seen is not None
    names = [*PROJECTED_FIELDS, SEQUENCE_ATTRIBUTE]
    return expr.params(f"attribute_exists({expr.name('state')}) AND {_equal_fields(expr, condition.seen, names)}")


# --- adapter --------------------------------------------------------------------------------------

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

    def read_source(self, email: str) -> dict[str, Any] | None:
        """The current source item (strongly consistent), or None."""
        answer = self._call(lambda: self._dynamodb.get_item(
            TableName=self.users_table, Key=typed_item({"email": email}), ConsistentRead=True))
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
            refused = [f.error for f in given_up if f.error is not None and f.failure.fault is not Fault.RETRYABLE]
            if refused:
                raise refused[0]  # as botocore raised it (callers name the error)
            raise RuntimeError(f"BatchGetItem left {len(given_up)} key(s) unprocessed after retries")
        return found

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
        try:
            if write.item is None:
                self._call(lambda: self._dynamodb.delete_item(
                    TableName=self.target_table, Key=typed_item(write.key.as_key()), **params))
            else:
                self._call(lambda: self._dynamodb.put_item(
                    TableName=self.target_table, Item=typed_item(write.item or {}), **params))
        except ClientError as error:
            if _code(error) == "ConditionalCheckFailedException":
                return WriteResult(write, Outcome.SUPERSEDED)
            return WriteResult(write, Outcome.FAILED, _describe(error))
        except _GaveUp as gave_up:
            return WriteResult(write, Outcome.FAILED, gave_up.error)
        return WriteResult(write, Outcome.APPLIED)

    def _call(self, request: Callable[[], Any]) -> Any:
        """One request, retried with backoff on throttling and connection trouble (`chalicelib.retry`); any
        other error is raised as botocore raised it."""
        try:
            return retry_call(request, self._backoff, self.stats)
        except GaveUp as gave_up:
            if gave_up.failure.fault is not Fault.RETRYABLE and gave_up.__cause__ is not None:
                raise gave_up.__cause__ from None
            raise _GaveUp(gave_up.failure.text) from gave_up


class _GaveUp(RuntimeError):
    def __init__(self, error: str):
        super().__init__(error)
        self.error = error


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _describe(error: ClientError) -> str:
    return f"{_code(error)}: {error.response.get('Error', {}).get('Message', '')}"


# --- replaying one dead-lettered replication record ------------------------------------------------

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
            except ValueError as error:  # a sequence number longer than any stream's
                raise ReplayError(str(error)) from error
            results = self._writer.apply(writes)
            failed = [r for r in results if r.outcome is Outcome.FAILED]
            if failed:
                raise ReplayError(f"target write failed: {failed[0].error}")
            if any(r.outcome is Outcome.SOURCE_CHANGED for r in results):
                continue
            # The source held the same projection before and after our writes: whatever the stream applied
            # meanwhile is either what we wrote or will be applied after it. Otherwise a change landed in
            # between (a stream write we may have overwritten or deleted): plan again from the new truth.
            if writes and project_user(self._writer.read_source(email)) != project_user(current):
                continue
            return ReplayReport(results)
        raise ReplayError(f"source item {email} kept changing during replay")
