"""Pure planning of the target writes made outside stream order: replays, backfill, repairs (no AWS).

The stream path writes unconditionally: stream order is authoritative. Everything else is planned here as
guarded writes, and never overwrites newer data:

- The truth is the CURRENT source item, read by the record's key, not the record's (maybe stale) image:
  a stale INSERT replayed after a newer delete or move must not resurrect the item.
- A put that depends on the source (a replay, a backfill or repair creating an item) carries a
  `SourceGuard`: the writer confirms afterwards that the user still projects to its key, and undoes it
  otherwise (`chalicelib.replication.conditional_writer`).
- Backfill only creates missing items; a repair only replaces exactly what verify saw. A replay writes the
  current truth unconditionally: the replayer reads the source again after its writes and plans again if
  it changed meanwhile (`chalicelib.replication.replay`).

`target_condition` turns a condition into DynamoDB ConditionExpression parameters.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from chalicelib.replication.projection import PROJECTED_FIELDS, TargetKey, project_user, target_key
from chalicelib.stream.images import typed_item
from chalicelib.stream.record import StreamRecord


class ReplayError(ValueError):
    """A record that cannot be replayed (no key, or its writes keep failing): the dead letter stays."""


class ConditionKind(StrEnum):
    """What the target item must look like for a write to land."""

    ANY = "any"                  # replay: the current truth, whatever the target holds (re-planned if raced)
    ABSENT = "absent"            # backfill: only create missing items
    UNCHANGED = "unchanged"      # repair: exactly what verify saw (None = absent)


@dataclass(frozen=True)
class TargetCondition:
    """A guard on the target item at the write's key."""

    kind: ConditionKind
    seen: Mapping[str, Any] | None = None     # UNCHANGED: the item as seen, None = absent

    @classmethod
    def any(cls) -> TargetCondition:
        return cls(ConditionKind.ANY)

    @classmethod
    def absent(cls) -> TargetCondition:
        return cls(ConditionKind.ABSENT)

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
    """Writes that bring the target keys a record touched to the current truth.

    Keys the record touched that the current item does not project to are deleted; the current projection
    is put, only while the source still holds what we read (its SourceGuard).
    """
    email = record_email(record)
    current_key = target_key(current)
    current_item = project_user(current)
    writes = [
        GuardedWrite(key, None, TargetCondition.any())
        for key in _touched_keys(record, email)
        if key != current_key
    ]
    if current_key is not None and current_item is not None:
        # Exactly the projection, like the stream path writes it (SPEC: a target item holds nothing else).
        writes.append(GuardedWrite(current_key, current_item, TargetCondition.any(), SourceGuard.of(email, current)))
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
    """ConditionExpression parameters for a target write (none for ANY)."""
    expr = _Expression()
    if condition.kind is ConditionKind.ANY:
        return {}
    if condition.kind is ConditionKind.ABSENT or condition.seen is None:
        return expr.params(f"attribute_not_exists({expr.name('state')})")
    return expr.params(f"attribute_exists({expr.name('state')}) AND "
                       f"{_equal_fields(expr, condition.seen, PROJECTED_FIELDS)}")
