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
A rejection's reason is in `field_errors`' one wording, the same as the API's 400s.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from chalicelib.clock import iso_utc
from chalicelib.field_errors import InvalidField, bounded_text, json_type, must_be, required, shown

FIELDS: tuple[str, ...] = ("user_id", "device", "location")
MAX_FIELD_CHARS = 256
# SQS message ids are at most 100 characters; a longer one would not come from SQS (and would bloat the key).
MAX_MESSAGE_ID_CHARS = 100
ITEM_KEY_NAMES: tuple[str, ...] = ("user_id", "seen_at")
BODY_RULE = "a JSON object"
MESSAGE_ID_RULE = f"an SQS message id of 1 to {MAX_MESSAGE_ID_CHARS} characters"
TIMESTAMP_RULE = "epoch milliseconds"

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
    """An invalid message: `reason` says what is wrong (field_errors' wording), `detail` what else is known."""

    reason: str
    detail: str = ""

    @property
    def error(self) -> str:
        """The dead-letter envelope's `error` field."""
        return f"InvalidMessage: {self.detail or self.reason}"


def parse_message(record: Any, received_at: datetime | None = None) -> DeviceSighting | Rejection:
    """The sighting an SQS record carries, or why it is rejected (never raises).

    `received_at` stands in for the send time of a record that carries no SentTimestamp at all.
    """
    if not isinstance(record, Mapping):
        return Rejection(must_be("record", "an object", json_type(record)))
    identity = _message_identity(record, received_at)
    if isinstance(identity, Rejection):
        return identity
    message_id, sent_at = identity

    body_text = record.get("body")
    if body_text is None:
        return Rejection(required("body"))
    if not isinstance(body_text, str):
        return Rejection(must_be("body", "a string", json_type(body_text)))
    try:
        body = json.loads(body_text)
    except ValueError as error:
        return Rejection(must_be("body", BODY_RULE, "invalid JSON"), str(error))
    except RecursionError:  # a body of thousands of nested brackets: not a message anyone meant to send
        return Rejection(must_be("body", BODY_RULE, "invalid JSON"), "nested too deeply to parse")
    if not isinstance(body, dict):
        return Rejection(must_be("body", BODY_RULE, json_type(body)))

    values: dict[str, str] = {}
    problems: list[str] = []
    for name in FIELDS:
        checked = check_field(name, body)
        if isinstance(checked, Rejection):
            problems.append(checked.reason)
        else:
            values[name] = checked
    if problems:
        return Rejection("; ".join(problems))
    return DeviceSighting(values["user_id"], values["device"], values["location"], message_id, sent_at)


def check_field(name: str, body: Mapping[str, Any]) -> str | Rejection:
    """The trimmed value of field `name`, or why it is unusable."""
    if name not in body:
        return Rejection(required(name))
    try:
        return bounded_text(body[name], name, MAX_FIELD_CHARS)
    except InvalidField as error:
        return Rejection(str(error))


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
    if message_id is None:
        return Rejection(required("messageId"))
    if not isinstance(message_id, str):
        return Rejection(must_be("messageId", MESSAGE_ID_RULE, json_type(message_id)))
    if not message_id.strip() or len(message_id) > MAX_MESSAGE_ID_CHARS:
        return Rejection(must_be("messageId", MESSAGE_ID_RULE, shown(message_id)))
    attributes = record.get("attributes")
    attributes = attributes if isinstance(attributes, Mapping) else {}
    name = "SentTimestamp" if "SentTimestamp" in attributes else "ApproximateFirstReceiveTimestamp"
    raw_sent = attributes.get(name)
    if raw_sent is None:
        if received_at is not None:
            return message_id, received_at
        return Rejection(required("attributes.SentTimestamp"))
    sent_at = sent_time(raw_sent)
    if sent_at is None:
        return Rejection(must_be(f"attributes.{name}", TIMESTAMP_RULE, shown(raw_sent)))
    return message_id, sent_at
