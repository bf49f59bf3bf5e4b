"""The stream dispatcher: plain values for every DynamoDB type, routing, isolation."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from decimal import Decimal

from chalicelib.consumer_runtime import records_of
from chalicelib.stream import EventName, StreamDispatcher, StreamRecord
from chalicelib.stream.dispatcher import HandlerError
from tests.support.events import insert, modify, remove, stream_event, stream_record

EVERY_TYPE = {
    "email": "a@example.com",
    "s": "text",
    "n": Decimal("12345678901234567890.123456789"),
    "b": b"\x00\xffbinary",
    "ss": {"b", "a"},
    "ns": {Decimal("1"), Decimal("2.5")},
    "bs": {b"\x01", b"\x02"},
    "m": {"nested": {"deep": [Decimal("1"), "x", None]}},
    "l": [Decimal("0.1"), True, None, b"\x03"],
    "bool": False,
    "null": None,
}


def test_images_are_plain_python_values_for_every_dynamodb_type():
    # GIVEN an INSERT whose image holds every DynamoDB type, as Lambda encodes it (binary as base64)
    raw = insert(EVERY_TYPE)
    assert raw["dynamodb"]["NewImage"]["b"] == {"B": base64.b64encode(b"\x00\xffbinary").decode()}
    # WHEN it is read
    record = StreamRecord(raw)
    # THEN every value is the plain Python equivalent
    assert record.new == EVERY_TYPE
    assert isinstance(record.new["n"], Decimal) and str(record.new["n"]) == "12345678901234567890.123456789"
    assert record.keys == {"email": "a@example.com"}
    assert record.old is None
    assert record.event_name is EventName.INSERT


def test_images_are_deserialized_once():
    record = StreamRecord(insert({"email": "a@example.com", "city": "X"}))
    assert record.new is record.new
    assert record.keys is record.keys


def test_changed_attributes_lists_added_removed_and_changed_sorted():
    old = {"email": "a@x.io", "city": "A", "zipcode": "00001", "gone": "x", "same": Decimal("1")}
    new = {"email": "a@x.io", "city": "B", "zipcode": "00001", "added": True, "same": Decimal("1.0")}
    record = StreamRecord(modify(old, new))
    assert record.changed_attributes == ["added", "city", "gone"]
    assert StreamRecord(insert(new)).changed_attributes == []
    assert StreamRecord(remove(old)).changed_attributes == []


def test_records_without_creation_time_or_source_arn_are_accepted():
    raw = insert({"email": "a@x.io"})
    del raw["dynamodb"]["ApproximateCreationDateTime"]
    del raw["eventSourceARN"]
    record = StreamRecord(raw)
    assert record.created_at is None and record.source_arn is None and record.table_name == ""
    report = StreamDispatcher().dispatch([raw])
    assert report.failures == []


def test_creation_time_and_table_name_are_read_from_the_record():
    record = StreamRecord(insert({"email": "a@x.io"}, created_at=1700000000, table="people"))
    assert record.created_at == datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)
    assert record.table_name == "people"
    moto_style = insert({"email": "a@x.io"})
    moto_style["dynamodb"]["ApproximateCreationDateTime"] = datetime(2024, 1, 1, tzinfo=UTC)
    assert StreamRecord(moto_style).created_at == datetime(2024, 1, 1, tzinfo=UTC)


def test_handlers_are_routed_by_event_type_in_stream_order_with_several_per_type():
    dispatcher = StreamDispatcher()
    seen: list[tuple[str, str]] = []
    dispatcher.on_insert(lambda r: seen.append(("insert-1", r.keys["email"])))
    dispatcher.on_insert(lambda r: seen.append(("insert-2", r.keys["email"])))
    dispatcher.on_modify(lambda r: seen.append(("modify", r.keys["email"])))
    dispatcher.on_remove(lambda r: seen.append(("remove", r.keys["email"])))
    a, b = {"email": "a@x.io"}, {"email": "b@x.io"}
    report = dispatcher.dispatch([insert(a), modify(a, a), remove(b), insert(b)])
    assert seen == [("insert-1", "a@x.io"), ("insert-2", "a@x.io"), ("modify", "a@x.io"),
                    ("remove", "b@x.io"), ("insert-1", "b@x.io"), ("insert-2", "b@x.io")]
    assert len(report.outcomes) == 4 and report.outcomes[0].results == (None, None)


def test_one_failing_record_does_not_stop_the_others():
    dispatcher = StreamDispatcher()

    @dispatcher.on_insert
    def explode_on_b(record: StreamRecord) -> str:
        if record.keys["email"] == "b@x.io":
            raise RuntimeError("boom")
        return record.keys["email"]

    records = [insert({"email": f"{c}@x.io"}) for c in "abc"]
    report = dispatcher.dispatch(records)
    assert [o.results for o in report.outcomes] == [("a@x.io",), ("c@x.io",)]
    assert len(report.failures) == 1
    failure = report.failures[0]
    assert failure.raw is records[1] and "boom" in failure.reason
    assert report.batch_item_failures() == {"batchItemFailures": [{"itemIdentifier": failure.sequence_number}]}


def test_handler_error_reason_is_kept_verbatim():
    dispatcher = StreamDispatcher()

    @dispatcher.on_remove
    def refuse(record: StreamRecord) -> None:
        raise HandlerError("REMOVE record has no OldImage")

    report = dispatcher.dispatch([stream_record("REMOVE", {"email": "a@x.io"})])
    assert report.failures[0].reason == "REMOVE record has no OldImage"


def test_an_unknown_event_name_is_a_malformed_record_not_a_silent_skip():
    # Found by the reliability suite: such records were skipped (a WARNING line, then gone); now each is a
    # failure its consumer dead-letters with the reason, and its neighbours go on.
    dispatcher = StreamDispatcher("t")
    dispatcher.on_insert(lambda r: None)
    odd = stream_record("UPSERT", {"email": "a@x.io"}, new={"email": "a@x.io"})
    report = dispatcher.dispatch([odd, insert({"email": "b@x.io"})])
    assert [f.raw for f in report.failures] == [odd] and len(report.outcomes) == 1
    assert report.failures[0].reason == "malformed stream record: unknown eventName 'UPSERT'"


def test_malformed_records_fail_alone_with_a_reason():
    dispatcher = StreamDispatcher()
    dispatcher.on_insert(lambda r: r.new)
    bad_image = insert({"email": "a@x.io"})
    bad_image["dynamodb"]["NewImage"] = {"x": {"B": "not base64!!"}}
    not_a_number = insert({"email": "a@x.io"})
    not_a_number["dynamodb"]["NewImage"] = {"n": {"N": "NaN"}}
    report = dispatcher.dispatch(["not a record", {"eventName": "INSERT"}, bad_image, not_a_number,
                                  insert({"email": "ok@x.io"})])
    reasons = [f.reason for f in report.failures]
    assert reasons[0].startswith("malformed stream record: record is a str")
    assert "no dynamodb object" in reasons[1]
    assert "NewImage" in reasons[2]
    assert "not a finite number" in reasons[3]
    assert len(report.outcomes) == 1


def test_records_of_reads_dicts_and_chalice_events():
    event = stream_event(insert({"email": "a@x.io"}))

    class Wrapped:
        def to_dict(self) -> dict:
            return event

    assert records_of(event) == event["Records"] == records_of(Wrapped())
    assert records_of({"nope": 1}) == []
