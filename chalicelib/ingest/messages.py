"""Validation of one ingest message (an SQS record as Lambda delivers it): a `DeviceSighting` or a `Rejection`.

Pure: no AWS, no clock. Rules (SPEC, Ingestion):
- the body is a JSON object with `user_id`, `device`, `location`; any other field is ignored, never stored;
- each of the three is a string; surrounding whitespace is trimmed (a blank value counts as empty) and
  the trimmed value must hold 1 to 256 characters (Unicode code points, as Python's `len` counts them);
- the record must carry a `messageId`; the item key `seen_at` is derived from it and from
  `attributes.SentTimestamp` (epoch milliseconds), so a redelivered message rewrites the same item. A record
  without SentTimestamp (hand-built events; SQS always sends it) is not an invalid message: its body decides.
  Its send time is taken from `ApproximateFirstReceiveTimestamp` (stable across redeliveries), else from
  `received_at`, the time the consumer received the batch (when given).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from chalicelib.clock import iso_utc
from chalicelib.http_body import json_type

FIELDS: tuple[str, ...] = ("user_id", "device", "location")
MAX_FIELD_CHARS = 256
# SQS message ids are at most 100 characters; a longer one would not come from SQS (and would bloat the key).
MAX_MESSAGE_ID_CHARS = 100
ITEM_KEY_NAMES: tuple[str, ...] = ("user_id", "seen_at")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class DeviceSighting:
    """A valid message: where and on what device a user was seen, and when the message was sent."""

    user_id: str
    device: str
    location: str
    message_id: str
    sent_at: datetime

    @property
    def seen_at(self) -> str:
        """The sort key: `<sent time, ISO-8601 UTC, ms, Z>#<messageId>`."""
        return f"{iso_utc(self.sent_at)}#{self.message_id}"

    def to_item(self) -> dict[str, str]:
        """The DEVICE_METADATA_TABLE item (SPEC: exactly these six attributes)."""
        return {
            "user_id": self.user_id,
            "seen_at": self.seen_at,
            "device": self.device,
            "location": self.location,
            "message_id": self.message_id,
            "sent_at": iso_utc(self.sent_at),
        }


@dataclass(frozen=True)
class Rejection:
    """An invalid message: `reason` says what is wrong (stable wording), `detail` adds what was found."""

    reason: str
    detail: str

    @property
    def error(self) -> str:
        """The dead-letter envelope's `error` field."""
        return f"InvalidMessage: {self.detail}"


def parse_message(record: Any, received_at: datetime | None = None) -> DeviceSighting | Rejection:
    """The sighting an SQS record carries, or why it is rejected (never raises).

    `received_at` stands in for the send time of a record that carries no SentTimestamp at all.
    """
    if not isinstance(record, Mapping):
        return Rejection("record is not an object", f"got {_kind(record)}")
    identity = _message_identity(record, received_at)
    if isinstance(identity, Rejection):
        return identity
    message_id, sent_at = identity

    body_text = record.get("body")
    if not isinstance(body_text, str):
        return Rejection("record has no body", f"body is {_kind(body_text)}")
    try:
        body = json.loads(body_text)
    except ValueError as error:
        return Rejection("body is not JSON", str(error))
    except RecursionError:  # a body of thousands of nested brackets: not a message anyone meant to send
        return Rejection("body is not JSON", "nested too deeply to parse")
    if not isinstance(body, dict):
        return Rejection("body is not a JSON object", f"got {json_type(body)}")

    values: dict[str, str] = {}
    problems: list[tuple[str, str]] = []
    for name in FIELDS:
        checked = check_field(name, body)
        if isinstance(checked, Rejection):
            problems.append((checked.reason, checked.detail))
        else:
            values[name] = checked
    if problems:
        return Rejection("; ".join(reason for reason, _ in problems), "; ".join(detail for _, detail in problems))
    return DeviceSighting(values["user_id"], values["device"], values["location"], message_id, sent_at)


def check_field(name: str, body: Mapping[str, Any]) -> str | Rejection:
    """The trimmed value of field `name`, or why it is unusable."""
    if name not in body:
        return Rejection(f"field {name} is missing", f"{name}: absent")
    value = body[name]
    if not isinstance(value, str):
        return Rejection(f"field {name} is not a string", f"{name}: got {json_type(value)}")
    trimmed = value.strip()
    if not trimmed:
        return Rejection(f"field {name} is empty", f"{name}: {value!r}")
    if len(trimmed) > MAX_FIELD_CHARS:
        return Rejection(
            f"field {name} is longer than {MAX_FIELD_CHARS} characters", f"{name}: {len(trimmed)} characters"
        )
    return trimmed


def sent_time(epoch_ms: Any) -> datetime | None:
    """`SentTimestamp` (epoch milliseconds, as text or a number) as a UTC datetime; None when it is not one."""
    if isinstance(epoch_ms, bool):
        return None
    if isinstance(epoch_ms, str):
        text = epoch_ms.strip()
        if not text.isdecimal() or not text.isascii():
            return None
        millis = int(text)
    elif isinstance(epoch_ms, int):
        millis = epoch_ms
    else:
        return None
    if millis < 0:
        return None
    try:
        moment = _EPOCH + timedelta(milliseconds=millis)
    except OverflowError:
        return None
    return moment if moment.year <= 9999 else None


def _message_identity(record: Mapping[str, Any], received_at: datetime | None) -> tuple[str, datetime] | Rejection:
    message_id = record.get("messageId")
    if not isinstance(message_id, str) or not message_id.strip():
        return Rejection("record has no messageId", f"messageId is {_kind(message_id)}")
    if len(message_id) > MAX_MESSAGE_ID_CHARS:
        return Rejection("record has an invalid messageId", f"messageId has {len(message_id)} characters")
    attributes = record.get("attributes")
    attributes = attributes if isinstance(attributes, Mapping) else {}
    name = "SentTimestamp" if "SentTimestamp" in attributes else "ApproximateFirstReceiveTimestamp"
    raw_sent = attributes.get(name)
    if raw_sent is None:
        if received_at is not None:
            return message_id, received_at
        return Rejection("record has no SentTimestamp", "attributes.SentTimestamp is absent")
    sent_at = sent_time(raw_sent)
    if sent_at is None:
        return Rejection(f"record has an invalid {name}", f"attributes.{name} is {raw_sent!r}")
    return message_id, sent_at


def _kind(value: Any) -> str:
    if value is None:
        return "absent"
    if isinstance(value, str):
        return "an empty string" if not value.strip() else "a string"
    return f"a {type(value).__name__}"
