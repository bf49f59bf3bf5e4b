"""Drift between the users table and its projection (pure): what verify reports and --fix repairs.

Verify never holds a table: it checks one page at a time. A page of users is checked against the target
items at their projected keys (missing, stale); a page of target items against the users their keys name
(orphaned). Values are compared exactly, DynamoDB type included (`same_value`, as the fan-out's
`changedAttributes`): a target `active` stored as the number 1 for a source `true` is stale.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from chalicelib.replication.projection import TargetKey, project_user, target_key
from chalicelib.stream.images import same_value


@dataclass(frozen=True)
class Missing:
    """A source user whose target item is absent."""

    key: TargetKey
    user: dict[str, Any]


@dataclass(frozen=True)
class Stale:
    """A target item that differs from its user's projection."""

    key: TargetKey
    user: dict[str, Any]
    actual: dict[str, Any]
    differences: tuple[str, ...]


@dataclass(frozen=True)
class Orphan:
    """A target item no source user projects to."""

    key: TargetKey
    actual: dict[str, Any]


@dataclass
class Drift:
    """What one page (or several) showed: counts of what was checked, and every difference found."""

    source_items: int = 0
    expected_items: int = 0  # users that project to a target item
    target_items: int = 0
    missing: list[Missing] = field(default_factory=list)
    stale: list[Stale] = field(default_factory=list)
    orphaned: list[Orphan] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.missing) + len(self.stale) + len(self.orphaned)


def differing_fields(expected: Mapping[str, Any], actual: Mapping[str, Any]) -> tuple[str, ...]:
    """Attribute names whose values differ (type included), or that only one side has (sorted)."""
    names = set(expected) | set(actual)
    return tuple(sorted(n for n in names
                        if n not in expected or n not in actual or not same_value(expected[n], actual[n])))


def stored_key(item: Mapping[str, Any]) -> TargetKey:
    """The primary key of a stored target item."""
    return TargetKey(str(item.get("state", "")), str(item.get("city_email", "")))


def user_email(key: TargetKey) -> str | None:
    """The source key a target key names: `<city>#<email>` (cities never hold `#`); None if it names none."""
    _, separator, email = key.city_email.partition("#")
    return email if separator and email else None


def expected_keys(users: Iterable[Mapping[str, Any]]) -> list[TargetKey]:
    """The target keys a page of users projects to (users without a state or city have none)."""
    return [key for key in map(target_key, users) if key is not None]


def check_users(users: Iterable[Mapping[str, Any]], targets: Mapping[TargetKey, Mapping[str, Any]]) -> Drift:
    """Missing and stale items of a page of users, given the target items found at their projected keys."""
    drift = Drift()
    for user in users:
        drift.source_items += 1
        key, item = target_key(user), project_user(user)
        if key is None or item is None:
            continue
        drift.expected_items += 1
        actual = targets.get(key)
        if actual is None:
            drift.missing.append(Missing(key, dict(user)))
            continue
        differences = differing_fields(item, actual)
        if differences:
            drift.stale.append(Stale(key, dict(user), dict(actual), differences))
    return drift


def check_targets(items: Iterable[Mapping[str, Any]], users: Mapping[str, Mapping[str, Any]]) -> Drift:
    """Orphaned items of a page of target items, given the users (by email) their keys name.

    An item whose user projects to it is not an orphan, whatever it holds: if it is stale, the user's
    side reports it (each drifted item is counted once).
    """
    drift = Drift()
    for raw in items:
        drift.target_items += 1
        key = stored_key(raw)
        email = user_email(key)
        if email is None or target_key(users.get(email)) != key:
            drift.orphaned.append(Orphan(key, dict(raw)))
    return drift
