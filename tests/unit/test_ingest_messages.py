"""Ingest message validation: an SQS record becomes a DeviceSighting (the stored item) or a Rejection with a reason."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.ingest.messages import (
    MAX_FIELD_CHARS,
    DeviceSighting,
    Rejection,
    parse_message,
    sent_time,
)
from tests.support.events import sqs_message

SENT_MS = 1_795_000_000_123  # 2026-11-18T...123Z
GOOD = {"user_id": "u-1", "device": "pixel-9", "location": "Lisbon"}


def rejected(record: object) -> Rejection:
    outcome = parse_message(record)
    assert isinstance(outcome, Rejection), outcome
    return outcome


def accepted(record: object) -> DeviceSighting:
    outcome = parse_message(record)
    assert isinstance(outcome, DeviceSighting), outcome
    return outcome


def test_a_valid_message_becomes_the_spec_item():
    # GIVEN a message with the three fields, sent at a known millisecond
    record = sqs_message(GOOD, message_id="m-1", sent_at_ms=SENT_MS)
    # WHEN it is parsed
    item = accepted(record).to_item()
    # THEN the item has exactly the SPEC's attributes, keyed by send time (ms, Z) and message id
    sent = datetime.fromtimestamp(SENT_MS / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S") + ".123Z"
    assert item == {
        "user_id": "u-1", "seen_at": f"{sent}#m-1", "device": "pixel-9", "location": "Lisbon",
        "message_id": "m-1", "sent_at": sent,
    }


def test_unknown_fields_are_ignored_not_stored():
    record = sqs_message({**GOOD, "battery": 80, "seen_at": "forged", "message_id": "forged"}, message_id="m-2")
    item = accepted(record).to_item()
    assert set(item) == {"user_id", "seen_at", "device", "location", "message_id", "sent_at"}
    assert item["message_id"] == "m-2" and item["seen_at"].endswith("#m-2")


def test_a_redelivered_message_has_the_same_key():
    # GIVEN one message delivered twice (same id and send time, new receipt handle and receive count)
    first = sqs_message(GOOD, message_id="m-3", sent_at_ms=SENT_MS, receipt_handle="r1")
    again = sqs_message(GOOD, message_id="m-3", sent_at_ms=SENT_MS, receipt_handle="r2", receive_count=2)
    # THEN both parse to the same item
    assert accepted(first).to_item() == accepted(again).to_item()


def test_surrounding_whitespace_is_trimmed():
    record = sqs_message({"user_id": "  u-1\n", "device": "\tpixel ", "location": " Lisbon, PT "})
    sighting = accepted(record)
    assert (sighting.user_id, sighting.device, sighting.location) == ("u-1", "pixel", "Lisbon, PT")


def test_length_counts_characters_after_trimming():
    # 256 four-byte characters (1024 UTF-8 bytes) are 256 characters: accepted
    wide = "\U0001f600" * MAX_FIELD_CHARS
    assert accepted(sqs_message({**GOOD, "device": wide})).device == wide
    assert accepted(sqs_message({**GOOD, "device": "x" * MAX_FIELD_CHARS + "   "})).device == "x" * MAX_FIELD_CHARS
    too_long = rejected(sqs_message({**GOOD, "location": "y" * (MAX_FIELD_CHARS + 1)}))
    assert too_long.reason == "location: must be a string of 1 to 256 characters, got 257 characters"
    assert too_long.error == f"InvalidMessage: {too_long.reason}"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("not json at all", "body: must be a JSON object, got invalid JSON"),
        ('{"user_id": "u"', "body: must be a JSON object, got invalid JSON"),
        ("", "body: must be a JSON object, got invalid JSON"),
        ("[" * 100_000 + "]" * 100_000, "body: must be a JSON object, got invalid JSON"),
        ('["u-1", "pixel", "Lisbon"]', "body: must be a JSON object, got array"),
        ('"just a string"', "body: must be a JSON object, got string"),
        ("42", "body: must be a JSON object, got number"),
        ("null", "body: must be a JSON object, got null"),
        (json.dumps({"device": "d", "location": "l"}), "user_id: required"),
        (json.dumps({**GOOD, "device": ""}), "device: must be a string of 1 to 256 characters, got an empty string"),
        (json.dumps({**GOOD, "device": "   \t"}),
         "device: must be a string of 1 to 256 characters, got a blank string"),
        (json.dumps({**GOOD, "location": 12}), "location: must be a string of 1 to 256 characters, got number"),
        (json.dumps({**GOOD, "location": None}), "location: must be a string of 1 to 256 characters, got null"),
        (json.dumps({**GOOD, "user_id": ["u"]}), "user_id: must be a string of 1 to 256 characters, got array"),
        (json.dumps({**GOOD, "user_id": True}), "user_id: must be a string of 1 to 256 characters, got boolean"),
        (json.dumps({**GOOD, "user_id": "u" * 257}),
         "user_id: must be a string of 1 to 256 characters, got 257 characters"),
        # a lone surrogate escape: no table could store it, so it is the message's fault, not a write failure
        ('{"user_id": "\\ud800", "device": "d", "location": "l"}',
         "user_id: must be a string of 1 to 256 characters, got invalid Unicode (an unpaired surrogate escape)"),
    ],
)
def test_each_kind_of_invalid_body_has_its_reason(body: str, reason: str):
    outcome = rejected(sqs_message(body))
    assert outcome.reason == reason
    assert outcome.error.startswith("InvalidMessage: ")


def test_every_problem_of_a_body_is_named():
    outcome = rejected(sqs_message({"user_id": "", "device": 5}))
    assert outcome.reason == ("user_id: must be a string of 1 to 256 characters, got an empty string; "
                              "device: must be a string of 1 to 256 characters, got number; location: required")
    assert outcome.error == f"InvalidMessage: {outcome.reason}"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda r: r.pop("messageId"), "messageId: required"),
        (lambda r: r.update(messageId=""),
         "messageId: must be an SQS message id of 1 to 100 characters, got an empty string"),
        (lambda r: r.update(messageId="m" * 101),
         "messageId: must be an SQS message id of 1 to 100 characters, got a string of 101 characters"),
        (lambda r: r.update(attributes={"ApproximateReceiveCount": "1"}), "attributes.SentTimestamp: required"),
        (lambda r: r["attributes"].pop("SentTimestamp") and r["attributes"].update(
            ApproximateFirstReceiveTimestamp="soon"),
         'attributes.ApproximateFirstReceiveTimestamp: must be epoch milliseconds, got "soon"'),
        (lambda r: r.pop("attributes"), "attributes.SentTimestamp: required"),
        (lambda r: r["attributes"].update(SentTimestamp="yesterday"),
         'attributes.SentTimestamp: must be epoch milliseconds, got "yesterday"'),
        (lambda r: r["attributes"].update(SentTimestamp="-5"),
         'attributes.SentTimestamp: must be epoch milliseconds, got "-5"'),
        (lambda r: r["attributes"].update(SentTimestamp="9" * 30),
         'attributes.SentTimestamp: must be epoch milliseconds, got "999999999999999999999999999999"'),
        (lambda r: r.pop("body"), "body: required"),
    ],
)
def test_a_record_lacking_what_the_key_needs_is_malformed(change, reason):
    record = sqs_message(GOOD)
    change(record)
    assert rejected(record).reason == reason


def test_a_record_that_is_not_an_object_is_rejected():
    assert rejected("not a record").reason == "record: must be an object, got string"


def test_sent_time_reads_epoch_milliseconds():
    assert sent_time("0") == datetime(1970, 1, 1, tzinfo=UTC)
    assert sent_time(1500) == datetime(1970, 1, 1, 0, 0, 1, 500000, tzinfo=UTC)
    assert sent_time("1.5") is None and sent_time(True) is None and sent_time(1.5) is None and sent_time("٣") is None


field_text = st.text(min_size=1, max_size=MAX_FIELD_CHARS).filter(lambda s: s.strip() == s and s != "")


@given(user_id=field_text, device=field_text, location=field_text, sent_ms=st.integers(0, 253_402_300_799_999))
def test_any_valid_fields_round_trip_into_the_item(user_id, device, location, sent_ms):
    record = sqs_message({"user_id": user_id, "device": device, "location": location}, sent_at_ms=sent_ms)
    item = accepted(record).to_item()
    assert (item["user_id"], item["device"], item["location"]) == (user_id, device, location)
    moment, _, message_id = item["seen_at"].partition("#")
    assert message_id == record["messageId"] and moment == item["sent_at"]
    parsed = datetime.fromisoformat(moment.replace("Z", "+00:00"))
    assert (parsed - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1) == sent_ms


def test_without_sent_timestamp_the_first_receive_time_then_the_receive_time_stand_in():
    record = sqs_message(GOOD, sent_at_ms=1_795_000_000_000)  # ApproximateFirstReceiveTimestamp = sent + 5 ms
    del record["attributes"]["SentTimestamp"]
    outcome = parse_message(record)
    assert isinstance(outcome, DeviceSighting) and outcome.seen_at.startswith("2026-11-18T11:06:40.005Z#")
    del record["attributes"]
    received = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    outcome = parse_message(record, received)
    assert isinstance(outcome, DeviceSighting) and outcome.sent_at == received
