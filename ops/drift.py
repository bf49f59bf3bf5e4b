"""Drift between the users table and its projection (pure): what verify reports and --fix repairs."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from chalicelib.replication.projection import TargetKey, project_user, public_target_item, target_key


@dataclass(frozen=True)
class Missing:
    """A source user whose target item is absent."""

    key: TargetKey
    user: dict[str, Any]


@dataclass(frozen=True)
class Stale:
    """A target item that differs from its user's projection (bookkeeping attributes ignored)."""

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
    """Everything in which the target differs from the projection of the source."""

    source_items: int = 0
    target_items: int = 0
    expected_items: int = 0
    missing: list[Missing] = field(default_factory=list)
    stale: list[Stale] = field(default_factory=list)
    orphaned: list[Orphan] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.missing) + len(self.stale) + len(self.orphaned)


def differing_fields(expected: Mapping[str, Any], actual: Mapping[str, Any]) -> tuple[str, ...]:
    """Attribute names whose values differ, or that only one side has (sorted)."""
    absent = object()
    names = set(expected) | set(actual)
    return tuple(sorted(n for n in names if expected.get(n, absent) != actual.get(n, absent)))


def find_drift(source_users: Iterable[Mapping[str, Any]], target_items: Iterable[Mapping[str, Any]]) -> Drift:
    """Compare the target table with the projection of every source user."""
    drift = Drift()
    expected: dict[TargetKey, tuple[dict[str, Any], dict[str, Any]]] = {}
    for user in source_users:
        drift.source_items += 1
        key, item = target_key(user), project_user(user)
        if key is not None and item is not None:
            expected[key] = (dict(user), item)
    drift.expected_items = len(expected)
    seen: set[TargetKey] = set()
    for raw in target_items:
        drift.target_items += 1
        actual = dict(raw)
        key = TargetKey(str(actual.get("state", "")), str(actual.get("city_email", "")))
        seen.add(key)
        if key not in expected:
            drift.orphaned.append(Orphan(key, actual))
            continue
        user, item = expected[key]
        differences = differing_fields(item, public_target_item(actual))
        if differences:
            drift.stale.append(Stale(key, user, actual, differences))
    drift.missing.extend(Missing(key, user) for key, (user, _) in expected.items() if key not in seen)
    for found in (drift.missing, drift.stale, drift.orphaned):
        found.sort(key=lambda entry: (entry.key.state, entry.key.city_email))
    return drift
