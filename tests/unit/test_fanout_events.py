"""Fan-out events (pure): the SPEC's Detail for every DynamoDB type, EventBridge sizing, packing, truncation."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from chalicelib.fanout.events import (
    DEFAULT_MAX_BYTES,
    MAX_ENTRIES_PER_CALL,
    EventTooLarge,
    FanoutEntry,
    build_entry,
    entry_size,
    event_detail,
    pack,
)
from chalicelib.stream.record import StreamRecord
from tests.support.events import insert, modify, remove

SOURCE = "stream-pipeline.users"
CREATED = 1795000000  # 2026-11-18T11:06:40Z

EVERY_TYPE = {
    "email": "a@example.com",
    "s": "text with ünïcödé",
    "n": Decimal("12345678901234567890.123456789"),
    "int": Decimal("-7"),
    "tiny": Decimal("0.000000000000000000000000000001"),
    "b": b"\x00\xffbinary",
    "ss": {"pear", "apple", "fig"},
    "ns": {Decimal("10"), Decimal("2.5"), Decimal("-1")},
    "bs": {b"\x02", b"\x01"},
    "m": {"nested": {"deep": [Decimal("1"), "x", None]}},
    "l": [Decimal("0.1"), True, None, b"\x03"],
    "bool": False,
    "null": None,
}

EVERY_TYPE_JSON = {
    "email": "a@example.com",
    "s": "text with ünïcödé",
    "n": Decimal("12345678901234567890.123456789"),
    "int": Decimal("-7"),
    "tiny": Decimal("0.000000000000000000000000000001"),
    "b": base64.b64encode(b"\x00\xffbinary").decode(),
    "ss": ["apple", "fig", "pear"],
    "ns": [Decimal("-1"), Decimal("2.5"), Decimal("10")],
    "bs": [base64.b64encode(b"\x01").decode(), base64.b64encode(b"\x02").decode()],
    "m": {"nested": {"deep": [Decimal("1"), "x", None]}},
    "l": [Decimal("0.1"), True, None, base64.b64encode(b"\x03").decode()],
    "bool": False,
    "null": None,
}


def detail_of(entry: FanoutEntry) -> dict:
    """The entry's Detail parsed without losing digits."""
    return json.loads(entry.entry["Detail"], parse_float=Decimal, parse_int=Decimal)


def test_insert_becomes_an_entry_with_every_dynamodb_type_as_exact_json():
    # GIVEN an INSERT of an item holding every DynamoDB type
    raw = insert(EVERY_TYPE, created_at=CREATED, sequence_number="4000000000000000000001")
    # WHEN its entry is built
    entry = build_entry(StreamRecord(raw), SOURCE)
    # THEN the entry names source, detail type, bus and time, and the Detail is the SPEC's shape
    assert entry.entry["Source"] == SOURCE
    assert entry.entry["DetailType"] == "INSERT"
    assert "EventBusName" not in entry.entry  # the publisher names the bus
    assert entry.entry["Time"] == datetime(2026, 11, 18, 11, 6, 40, tzinfo=UTC)
    assert detail_of(entry) == {
        "eventID": raw["eventID"],
        "eventName": "INSERT",
        "table": "stream-pipeline-test-users",
        "sequenceNumber": "4000000000000000000001",
        "approximateCreationDateTime": "2026-11-18T11:06:40.000Z",
        "keys": {"email": "a@example.com"},
        "newImage": EVERY_TYPE_JSON,
        "oldImage": None,
        "changedAttributes": [],
        "truncated": False,
    }
    assert not entry.truncated


def test_numbers_keep_every_digit_in_the_detail_text():
    entry = build_entry(StreamRecord(insert(EVERY_TYPE)), SOURCE)
    text = entry.entry["Detail"]
    assert '"n":12345678901234567890.123456789' in text
    assert '"tiny":0.000000000000000000000000000001' in text
    assert '"ns":[-1,2.5,10]' in text


def test_modify_lists_changed_attributes_and_carries_both_images():
    old = {"email": "a@example.com", "city": "Austin", "state": "TX", "zipcode": "00001", "gone": "x"}
    new = {"email": "a@example.com", "city": "Dallas", "state": "TX", "zipcode": "00001", "active": True}
    detail = detail_of(build_entry(StreamRecord(modify(old, new)), SOURCE))
    assert detail["eventName"] == "MODIFY"
    assert detail["changedAttributes"] == ["active", "city", "gone"]
    assert detail["newImage"] == new
    assert detail["oldImage"] == old


def test_remove_carries_the_old_image_only():
    old = {"email": "a@example.com", "city": "Austin", "n": Decimal("1.50")}
    entry = build_entry(StreamRecord(remove(old)), SOURCE)
    detail = detail_of(entry)
    assert entry.entry["DetailType"] == "REMOVE"
    assert detail["newImage"] is None
    assert detail["oldImage"] == old
    assert '"n":1.50' in entry.entry["Detail"]  # trailing zeros are digits too
    assert detail["changedAttributes"] == []


def test_record_without_creation_time_omits_time_and_nulls_the_detail_time():
    raw = insert({"email": "a@example.com"})
    del raw["dynamodb"]["ApproximateCreationDateTime"]
    entry = build_entry(StreamRecord(raw), SOURCE)
    assert "Time" not in entry.entry  # EventBridge stamps the time of the call
    assert detail_of(entry)["approximateCreationDateTime"] is None
    assert entry.size == entry_size(entry.entry)


def test_record_without_source_arn_has_a_null_table():
    raw = insert({"email": "a@example.com"})
    del raw["eventSourceARN"]
    assert detail_of(build_entry(StreamRecord(raw), SOURCE))["table"] is None


def test_entry_size_counts_like_eventbridge():
    # 14 for a Time, UTF-8 bytes of Source, DetailType, Detail and each Resources entry; EventBusName is free
    entry = {"Time": datetime.now(UTC), "Source": "src", "DetailType": "INSERT", "Detail": '{"é":1}',
             "Resources": ["arn:a", "arn:bb"], "EventBusName": "a-very-long-bus-name"}
    assert entry_size(entry) == 14 + 3 + 6 + len('{"é":1}'.encode()) + 5 + 6
    del entry["Time"], entry["Resources"]
    assert entry_size(entry) == 3 + 6 + 8  # "é" is two UTF-8 bytes


def test_an_item_too_large_for_eventbridge_is_sent_truncated():
    # GIVEN a MODIFY of an item whose two images together are far over 256 KiB
    old = {"email": "big@example.com", "blob": "o" * 150_000, "city": "A"}
    new = {"email": "big@example.com", "blob": "n" * 150_000, "city": "B"}
    raw = modify(old, new, created_at=CREATED)
    # WHEN its entry is built
    entry = build_entry(StreamRecord(raw), SOURCE)
    # THEN both images are null, it says so, and keys and changed attributes remain for a re-read
    detail = detail_of(entry)
    assert entry.truncated and detail["truncated"] is True
    assert detail["newImage"] is None and detail["oldImage"] is None
    assert detail["keys"] == {"email": "big@example.com"}
    assert detail["changedAttributes"] == ["blob", "city"]
    assert detail["eventID"] == raw["eventID"]
    assert entry.size <= DEFAULT_MAX_BYTES


def test_an_entry_exactly_at_the_limit_is_not_truncated_and_one_byte_more_is():
    base = build_entry(StreamRecord(insert({"email": "e@x.io", "pad": ""}, created_at=CREATED)), SOURCE)
    room = DEFAULT_MAX_BYTES - base.size
    fits = build_entry(StreamRecord(insert({"email": "e@x.io", "pad": "p" * room}, created_at=CREATED)), SOURCE)
    assert fits.size == DEFAULT_MAX_BYTES and not fits.truncated
    over = build_entry(StreamRecord(insert({"email": "e@x.io", "pad": "p" * (room + 1)}, created_at=CREATED)),
                       SOURCE)
    assert over.truncated


def test_event_max_bytes_moves_the_truncation_limit_both_ways():
    # GIVEN an entry of ~300 KB (over the 256 KiB default)
    record = StreamRecord(insert({"email": "e@x.io", "pad": "p" * 300_000}, created_at=CREATED))
    # WHEN built under the default, under 1 MiB (an account with the larger limit), and under 100 KB
    default = build_entry(record, SOURCE)
    larger = build_entry(record, SOURCE, max_bytes=1024 * 1024)
    smaller = build_entry(StreamRecord(insert({"email": "e@x.io", "pad": "p" * 150_000})), SOURCE, max_bytes=100_000)
    # THEN only the limit decides: truncated at 256 KiB, whole at 1 MiB, truncated again at 100 KB
    assert default.truncated and default.size <= DEFAULT_MAX_BYTES
    assert not larger.truncated and larger.size > 300_000
    assert smaller.truncated and smaller.size <= 100_000


def test_pack_follows_event_max_bytes():
    # GIVEN entries of 300 KB, 300 KB, 500 KB and 10 bytes, under a 1 MiB limit
    entries = [_entry_of_size(s) for s in (300_000, 300_000, 500_000, 10)]
    # WHEN packed THEN a call holds up to the limit (two calls, not four as under 256 KiB)
    assert [[e.size for e in call] for call in pack(entries, max_bytes=1024 * 1024)] == [
        [300_000, 300_000], [500_000, 10]]


def test_an_entry_too_large_even_without_images_is_refused():
    names = {f"attribute_{i:06d}_{'x' * 200}": "a" for i in range(1300)}  # ~270 KB of changed names
    old = {"email": "e@x.io", **names}
    new = {"email": "e@x.io"}
    with pytest.raises(EventTooLarge):
        build_entry(StreamRecord(modify(old, new)), SOURCE)


def _entry_of_size(size: int) -> FanoutEntry:
    record = StreamRecord(insert({"email": "e@x.io"}))
    return FanoutEntry(record, {}, size, False)


def test_pack_puts_at_most_ten_entries_in_a_call():
    calls = pack([_entry_of_size(100) for _ in range(57)])
    assert [len(call) for call in calls] == [10, 10, 10, 10, 10, 7]
    assert len(calls) == 6 and MAX_ENTRIES_PER_CALL == 10


def test_pack_keeps_each_call_within_the_request_size_and_in_order():
    sizes = [100_000, 100_000, 62_144, 1, 200_000, 262_144, 10]
    entries = [_entry_of_size(s) for s in sizes]
    calls = pack(entries)
    assert [[e.size for e in call] for call in calls] == [[100_000, 100_000, 62_144], [1, 200_000], [262_144], [10]]
    assert all(sum(e.size for e in call) <= DEFAULT_MAX_BYTES for call in calls)
    assert [e for call in calls for e in call] == entries


def test_pack_of_nothing_is_no_call():
    assert pack([]) == []


def test_event_detail_truncated_keeps_everything_but_the_images():
    record = StreamRecord(modify({"email": "a@x.io", "city": "A"}, {"email": "a@x.io", "city": "B"}))
    full, cut = event_detail(record), event_detail(record, truncated=True)
    assert {k: v for k, v in full.items() if k not in ("newImage", "oldImage", "truncated")} == \
        {k: v for k, v in cut.items() if k not in ("newImage", "oldImage", "truncated")}
    assert cut["newImage"] is None and cut["oldImage"] is None and cut["truncated"] is True
