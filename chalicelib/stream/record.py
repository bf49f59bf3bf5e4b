"""One DynamoDB stream record, read from the raw Lambda dict.

Chalice's `DynamoDBRecord` requires `ApproximateCreationDateTime` and `eventSourceARN`; real events
from some producers lack them, so this class reads the raw record defensively and deserializes each
image once, on first use.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from functools import cached_property, lru_cache
from typing import Any

from chalicelib.clock import from_epoch
from chalicelib.stream.images import plain_image, same_value


class EventName(StrEnum):
    """The three kinds of change a DynamoDB stream reports."""

    INSERT = "INSERT"
    MODIFY = "MODIFY"
    REMOVE = "REMOVE"


_EVENT_NAMES = {kind.value: kind for kind in EventName}


@lru_cache(maxsize=64)  # a batch's records share one stream ARN
def _table_of(arn: str) -> str:
    resource = arn.split(":", 5)[-1] if arn.count(":") >= 5 else ""
    parts = resource.split("/")
    return parts[1] if len(parts) > 1 and parts[0] == "table" else ""


@lru_cache(maxsize=256)  # a batch's records mostly share their creation second
def _from_epoch_int(value: int) -> datetime:
    return from_epoch(value / 1000 if value > 10**11 else float(value))


class MalformedRecord(ValueError):
    """The raw record cannot be read as a DynamoDB stream record."""


class StreamRecord:
    """A stream record whose keys and images are plain Python values."""

    def __init__(self, raw: Mapping[str, Any]):
        if not isinstance(raw, Mapping):
            raise MalformedRecord(f"record is a {type(raw).__name__}, not an object")
        dynamodb = raw.get("dynamodb")
        if not isinstance(dynamodb, Mapping):
            raise MalformedRecord("record has no dynamodb object")
        self.raw = raw
        self._dynamodb = dynamodb

    @property
    def event_id(self) -> str:
        """Lambda's eventID ('' when absent)."""
        return str(self.raw.get("eventID", ""))

    @cached_property  # read several times per record on the hot path
    def event_name_text(self) -> str:
        """The eventName as delivered, known or not."""
        return str(self.raw.get("eventName", ""))

    @cached_property  # read several times per record on the hot path
    def event_name(self) -> EventName | None:
        """INSERT, MODIFY or REMOVE; None for anything else."""
        return _EVENT_NAMES.get(self.event_name_text)

    @property
    def sequence_number(self) -> str:
        """The stream sequence number ('' when absent)."""
        return str(self._dynamodb.get("SequenceNumber", ""))

    @property
    def source_arn(self) -> str | None:
        """eventSourceARN, when present."""
        value = self.raw.get("eventSourceARN")
        return str(value) if value else None

    @property
    def table_name(self) -> str:
        """The table name from eventSourceARN ('' when absent)."""
        return _table_of(self.source_arn or "")

    @cached_property
    def created_at(self) -> datetime | None:
        """ApproximateCreationDateTime as UTC datetime (epoch seconds or ms, or ISO text), if present."""
        value = self._dynamodb.get("ApproximateCreationDateTime")
        if value is None or isinstance(value, bool):
            return None
        if isinstance(value, datetime):
            return value
        if type(value) is int:  # what Lambda sends: epoch seconds, no Decimal needed
            return _from_epoch_int(value)
        try:
            seconds = Decimal(str(value))
        except InvalidOperation:
            try:
                return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
            except ValueError:
                return None
        if seconds > 10**11:  # epoch milliseconds (some producers, EventBridge Pipes)
            seconds = seconds / 1000
        return from_epoch(float(seconds))

    @cached_property
    def keys(self) -> dict[str, Any]:
        """The item's primary key as plain values."""
        return self._image("Keys") or {}

    @cached_property
    def new(self) -> dict[str, Any] | None:
        """NewImage as plain values, or None when the record carries none."""
        return self._image("NewImage")

    @cached_property
    def old(self) -> dict[str, Any] | None:
        """OldImage as plain values, or None when the record carries none."""
        return self._image("OldImage")

    def typed(self, field: str) -> Any:
        """`dynamodb.<field>` as delivered (typed values, unchecked), or None: for writers that skip plain values."""
        return self._dynamodb.get(field)

    @cached_property
    def changed_attributes(self) -> list[str]:
        """For MODIFY, names added, removed or changed between the images (sorted); else empty."""
        if self.event_name is not EventName.MODIFY or self.new is None or self.old is None:
            return []
        names = set(self.new) | set(self.old)
        return sorted(n for n in names if n not in self.new or n not in self.old
                      or not same_value(self.new[n], self.old[n]))

    def _image(self, field: str) -> dict[str, Any] | None:
        image = self._dynamodb.get(field)
        if image is None:
            return None
        if not isinstance(image, Mapping):
            raise MalformedRecord(f"dynamodb.{field} is not an object")
        try:
            return plain_image(image)
        except (TypeError, ValueError, KeyError, AttributeError, InvalidOperation) as error:
            raise MalformedRecord(f"dynamodb.{field} is not a DynamoDB image: {error}") from error

    def __repr__(self) -> str:
        return f"StreamRecord({self.event_name_text} seq={self.sequence_number} keys={self.keys!r})"

