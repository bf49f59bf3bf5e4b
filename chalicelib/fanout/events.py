"""Stream records → EventBridge PutEvents entries, sized the way EventBridge sizes them, packed into calls.

Pure functions over plain values: no client, no clock. The consumer feeds them StreamRecords; the
publisher sends the packed calls.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from json.encoder import encode_basestring as _encode_string  # exact_json's string writer, in C
from typing import Any

from chalicelib import exact_json
from chalicelib.clock import iso_utc
from chalicelib.stream.images import image_json, plain_value, same_value
from chalicelib.stream.record import EventName, StreamRecord

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


# A batch's records mostly share their creation second: its text is written once.
_iso_text = lru_cache(maxsize=256)(iso_utc)


def _detail_parts(record: StreamRecord, table: str, received_at: datetime | None) -> tuple[str, ...] | None:
    """The Detail's JSON pieces (head, keys, new image, old image, changed attributes) written straight from the
    typed images, as `exact_json.dumps(event_detail(...))` writes them; None when an image holds something only
    the plain path writes (binary, sets, numbers in exponent form) or decides (malformed values)."""
    keys, new, old = record.typed("Keys"), record.typed("NewImage"), record.typed("OldImage")
    keys_text = "{}" if keys is None else image_json(keys)
    new_text = "null" if new is None else image_json(new)
    old_text = "null" if old is None else image_json(old)
    if keys_text is None or new_text is None or old_text is None:
        return None
    changed = ""
    if record.event_name is EventName.MODIFY and new is not None and old is not None:
        # Both images are checked above; typed values alike are plain values alike (no sets on this path).
        changed = ",".join([_encode_string(name) for name in sorted(new.keys() | old.keys())
                            if name not in new or name not in old or new[name] != old[name]
                            and not same_value(plain_value(new[name]), plain_value(old[name]))])
    created = record.created_at or received_at
    created_text = _encode_string(_iso_text(created)) if created is not None else "null"
    table_name = record.table_name or table
    head = ('{"eventID":' + _encode_string(record.event_id) + ',"eventName":' + _encode_string(record.event_name_text)
            + ',"table":' + (_encode_string(table_name) if table_name else "null")
            + ',"sequenceNumber":' + _encode_string(record.sequence_number)
            + ',"approximateCreationDateTime":' + created_text)
    return head, keys_text, new_text, old_text, changed


def _detail_json(parts: tuple[str, ...], truncated: bool) -> str:
    head, keys_text, new_text, old_text, changed = parts
    if truncated:
        new_text = old_text = "null"
    return (head + ',"keys":' + keys_text + ',"newImage":' + new_text + ',"oldImage":' + old_text
            + ',"changedAttributes":[' + changed + '],"truncated":' + ("true" if truncated else "false") + "}")


def _counted_size(has_time: bool, texts: Iterable[str]) -> int:
    """EventBridge's count: 14 bytes for a present Time, the UTF-8 bytes of every other field."""
    return (TIME_SIZE if has_time else 0) + sum(len(text) if text.isascii() else len(text.encode("utf-8"))
                                                for text in texts)


def entry_size(entry: Mapping[str, Any]) -> int:
    """Bytes EventBridge counts for one PutEvents entry (AWS: "Calculating PutEvents event entry size")."""
    fields = [str(value) for field in ("Source", "DetailType", "Detail") if (value := entry.get(field)) is not None]
    resources = [str(resource) for resource in entry.get("Resources") or () if resource is not None]
    return _counted_size(entry.get("Time") is not None, fields + resources)


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
    parts = _detail_parts(record, table, received_at)
    for truncated in (False, True):
        entry: dict[str, Any] = {
            "Source": source,
            "DetailType": record.event_name_text,
            "Detail": _detail_json(parts, truncated) if parts is not None else exact_json.dumps(
                event_detail(record, truncated=truncated, table=table, received_at=received_at)),
        }
        if created is not None:  # without it EventBridge stamps the time of the call
            entry["Time"] = created
        size = _counted_size(created is not None, (source, record.event_name_text, entry["Detail"]))  # = entry_size
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

