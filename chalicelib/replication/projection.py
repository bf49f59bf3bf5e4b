"""Pure decisions of replication: what target item a user projects to, and what a stream record writes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from chalicelib.stream.dispatcher import HandlerError
from chalicelib.stream.record import EventName, StreamRecord

TARGET_KEY_NAMES = ("state", "city_email")
PROJECTED_FIELDS = ("state", "city", "email", "active")


@dataclass(frozen=True)
class TargetKey:
    """The primary key of a users-by-location item."""

    state: str
    city_email: str

    def as_key(self) -> dict[str, str]:
        """`{"state": ..., "city_email": ...}`."""
        return {"state": self.state, "city_email": self.city_email}


@dataclass(frozen=True)
class TargetWrite:
    """Put `item` at `key`, or delete `key` when `item` is None."""

    key: TargetKey
    item: dict[str, Any] | None


def city_email(city: str, email: str) -> str:
    """The target sort key `<city>#<email>` (cities never contain `#`, so the prefix is exact)."""
    return f"{city}#{email}"


def target_key(user: Mapping[str, Any] | None) -> TargetKey | None:
    """Where `user` lives in the target table; None when it lacks a state, city or email."""
    if not user:
        return None
    state, city, email = user.get("state"), user.get("city"), user.get("email")
    if not (isinstance(state, str) and state and isinstance(city, str) and city and isinstance(email, str) and email):
        return None
    return TargetKey(state, city_email(city, email))


def project_user(user: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The target item for a source user item (never `zipcode`), or None when it has no target."""
    key = target_key(user)
    return None if key is None or user is None else _projection(user, key)


def _projection(user: Mapping[str, Any], key: TargetKey) -> dict[str, Any]:
    item = {name: user[name] for name in PROJECTED_FIELDS if name in user}
    item["city_email"] = key.city_email
    return item


def _with_email(image: Mapping[str, Any] | None, record: StreamRecord) -> Mapping[str, Any] | None:
    # The key is authoritative for email; an image that somehow lacks it still projects correctly.
    if image is None or "email" in image or "email" not in record.keys:
        return image  # read only: no copy
    return {**image, "email": record.keys["email"]}


def plan_writes(record: StreamRecord) -> list[TargetWrite]:
    """The target writes one stream record implies, in order (a delete of the old key before the put)."""
    kind = record.event_name
    new = _with_email(record.new, record)
    old = _with_email(record.old, record)
    if kind in (EventName.INSERT, EventName.MODIFY) and new is None:
        raise HandlerError(f"{kind.value} record has no NewImage (stream view type must include new images)")
    if kind in (EventName.MODIFY, EventName.REMOVE) and old is None:
        raise HandlerError(f"{kind.value} record has no OldImage (stream view type must be NEW_AND_OLD_IMAGES)")

    writes: list[TargetWrite] = []
    old_key = target_key(old)
    new_key = target_key(new) if kind is not EventName.REMOVE else None
    if old_key is not None and old_key != new_key:
        writes.append(TargetWrite(old_key, None))
    if new_key is not None and new is not None:
        writes.append(TargetWrite(new_key, _projection(new, new_key)))
    return writes
