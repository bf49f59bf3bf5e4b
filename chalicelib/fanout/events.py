"""Stream records → EventBridge PutEvents entries, sized the way EventBridge sizes them, packed into calls.

Pure functions over plain values: no client, no clock. The consumer feeds them StreamRecords; the
publisher sends the packed calls.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from chalicelib import exact_json
from chalicelib.clock import iso_utc
from chalicelib.stream.record import StreamRecord

MAX_ENTRIES_PER_CALL = 10
# EventBridge caps one entry and the whole PutEvents request at one size, both counted by `entry_size`:
# 256 KiB, or 1 MiB where the account has the larger limit (EVENT_MAX_BYTES).
DEFAULT_MAX_BYTES = 256 * 1024
TIME_SIZE = 14  # EventBridge counts a present Time as 14 bytes, whatever its text


class EventTooLarge(ValueError):
    """Even without images the entry is over EventBridge's limit (keys or attribute names too large)."""


def event_detail(record: StreamRecord, *, truncated: bool = False, table: str = "",
                 received_at: datetime | None = None) -> dict[str, Any]:
    """The SPEC's Detail for `record`; `truncated` drops both images (consumers re-read by `keys`).

    `table` names the table when the record has no eventSourceARN (the consumer knows its stream's table),
    and `received_at` stands in for a missing ApproximateCreationDateTime, so that both fields keep their
    types (strings) for subscribers; without them such a record gets nulls.
    """
    created = record.created_at or received_at
    return {
        "eventID": record.event_id,
        "eventName": record.event_name_text,
        "table": record.table_name or table or None,
        "sequenceNumber": record.sequence_number,
        "approximateCreationDateTime": iso_utc(created) if created is not None else None,
        "keys": record.keys,
        "newImage": None if truncated else record.new,
        "oldImage": None if truncated else record.old,
        "changedAttributes": record.changed_attributes,
        "truncated": truncated,
    }


def entry_size(entry: Mapping[str, Any]) -> int:
    """Bytes EventBridge counts for one PutEvents entry (AWS: "Calculating PutEvents event entry size")."""
    size = TIME_SIZE if entry.get("Time") is not None else 0
    for field in ("Source", "DetailType", "Detail"):
        value = entry.get(field)
        if value is not None:
            size += len(str(value).encode("utf-8"))
    for resource in entry.get("Resources") or ():
        if resource is not None:
            size += len(str(resource).encode("utf-8"))
    return size


@dataclass(frozen=True)
class FanoutEntry:
    """One record's PutEvents entry, its EventBridge size, and whether its images were dropped."""

    record: StreamRecord
    entry: dict[str, Any]
    size: int
    truncated: bool


def build_entry(record: StreamRecord, source: str, *, table: str = "", received_at: datetime | None = None,
                max_bytes: int = DEFAULT_MAX_BYTES) -> FanoutEntry:
    """The entry for `record` (the publisher names the bus); images are dropped (`truncated`) only when the
    whole entry would be over `max_bytes`. `table`, `received_at`: see `event_detail` (Time follows the Detail)."""
    created: datetime | None = record.created_at or received_at
    for truncated in (False, True):
        detail = event_detail(record, truncated=truncated, table=table, received_at=received_at)
        entry: dict[str, Any] = {
            "Source": source,
            "DetailType": record.event_name_text,
            "Detail": exact_json.dumps(detail),
        }
        if created is not None:  # without it EventBridge stamps the time of the call
            entry["Time"] = created
        size = entry_size(entry)
        if size <= max_bytes:
            return FanoutEntry(record, entry, size, truncated)
    raise EventTooLarge(f"event of {size} bytes is over EventBridge's {max_bytes}-byte limit even without images")


def pack(entries: Iterable[FanoutEntry], max_bytes: int = DEFAULT_MAX_BYTES) -> list[list[FanoutEntry]]:
    """Consecutive groups of ≤ 10 entries whose sizes sum to ≤ `max_bytes`: one PutEvents call each."""
    calls: list[list[FanoutEntry]] = []
    current: list[FanoutEntry] = []
    size = 0
    for entry in entries:
        if current and (len(current) == MAX_ENTRIES_PER_CALL or size + entry.size > max_bytes):
            calls.append(current)
            current, size = [], 0
        current.append(entry)
        size += entry.size
    if current:
        calls.append(current)
    return calls

