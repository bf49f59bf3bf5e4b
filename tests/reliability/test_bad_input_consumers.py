"""Every consumer under records of any shape (hypothesis), delivered through the app's own handlers.

- Ingest: a message of any body is stored or dead-lettered with a reason, exactly one of the two; nothing
  that is not a JSON object with the three fields is ever written; the valid messages beside it are stored.
- Streams (replication, fan-out, orders): records with missing or extra fields, wrong types, unknown event
  names, missing images, non-numeric sequence numbers, beside good records: no crash, every record applied,
  skipped or dead-lettered with a reason, and the good ones applied (target item, published event).
"""

from __future__ import annotations

import copy
import itertools
import json
from collections import Counter
from typing import Any

import boto3
import pytest
from chalice.local import LambdaContext
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.stream.images import plain_item
from tests.reliability import figures
from tests.reliability.conftest import RELIABILITY_CONSUMERS
from tests.reliability.test_bad_input_api import json_values, unicode_text
from tests.support.events import insert, sqs_message
from tests.support.queues import drain
from tests.support.resources import StageResources

CONTEXT = LambdaContext("reliability", 128, 60_000)
_serial = itertools.count()


def handler(name: str) -> Any:
    import app

    return getattr(app, name)


# --- Ingest ---------------------------------------------------------------------------------------

def good_body(n: int) -> dict[str, str]:
    return {"user_id": f"user-{n}", "device": "pixel-9", "location": "Lisbon"}


@st.composite
def message_body(draw: st.DrawFn) -> str:
    how = draw(st.sampled_from(["field", "missing", "any", "raw", "surrogate", "huge", "deep"]))
    body: dict[str, Any] = good_body(next(_serial))
    if how == "field":
        body[draw(st.sampled_from(sorted(body)))] = draw(json_values | st.just(" ") | st.just("z" * 257))
    elif how == "missing":
        del body[draw(st.sampled_from(sorted(body)))]
    elif how == "any":
        return json.dumps(draw(json_values), default=str)
    elif how == "raw":
        return draw(unicode_text)
    elif how == "surrogate":
        return json.dumps({**body, "device": "SURROGATE"}).replace('"SURROGATE"', '"\\udc00"')
    elif how == "huge":
        body["location"] = "q" * draw(st.integers(257, 200_000))
    else:
        return "[" * draw(st.integers(100, 20_000))
    return json.dumps(body, default=str)


def is_storable(text: str) -> bool:
    """The only bodies a store may hold: an object whose three fields are strings."""
    try:
        body = json.loads(text)
    except ValueError:
        return False
    return isinstance(body, dict) and all(isinstance(body.get(f), str) for f in ("user_id", "device", "location"))


def test_messages_of_any_body_are_stored_or_dead_lettered_never_both(aws: StageResources) -> None:
    dynamodb = boto3.client("dynamodb")
    totals: Counter[str] = Counter()

    @RELIABILITY_CONSUMERS
    @given(bodies=st.lists(message_body(), min_size=1, max_size=12), goods=st.integers(0, 5))
    def case(bodies: list[str], goods: int) -> None:
        records = [sqs_message(text) for text in bodies]
        good = [sqs_message(good_body(next(_serial))) for _ in range(goods)]
        batch = [*records[:len(records) // 2], *good, *records[len(records) // 2:]]
        handler("ingest_device_metadata")({"Records": batch}, CONTEXT)
        stored = {item["message_id"]: item for item in (plain_item(i) for i in dynamodb.scan(
            TableName=aws["DeviceMetadataTable"], ConsistentRead=True)["Items"])}
        letters = {letter["record"]["messageId"]: letter for letter in drain(aws["IngestDlqUrl"])}
        for record in batch:
            identifier = record["messageId"]
            assert (identifier in stored) != (identifier in letters), f"{record['body'][:200]!r}"
            if identifier in stored:
                assert is_storable(record["body"]), f"stored an invalid body {record['body'][:200]!r}"
            else:
                assert letters[identifier]["reason"], letters[identifier]
                assert letters[identifier]["record"] == record  # the original record, unchanged
        assert all(r["messageId"] in stored for r in good)
        totals.update(cases=1, messages=len(batch), stored=sum(r["messageId"] in stored for r in batch),
                      dead_lettered=sum(r["messageId"] in letters for r in batch))
        for table_item in stored.values():  # keep the table small: the next case starts clean
            dynamodb.delete_item(TableName=aws["DeviceMetadataTable"],
                                 Key={"user_id": {"S": table_item["user_id"]}, "seen_at": {"S": table_item["seen_at"]}})

    case()
    figures.record("Consumers under malformed input", consumer="ingest", input="SQS bodies of any shape",
                   cases=totals["cases"], records=totals["messages"], applied=totals["stored"],
                   **{"dead-lettered": totals["dead_lettered"], "lost": 0, "crashes": 0})


# --- Streams --------------------------------------------------------------------------------------

def user(n: int) -> dict[str, Any]:
    return {"email": f"u{n}@example.com", "state": "NY", "city": f"City {n % 7}", "zipcode": "01234", "active": True}


# What a Lambda event can hold: JSON, so no NaN, no Decimal.
lambda_json = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
                           | unicode_text, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(unicode_text, inner, max_size=4), max_leaves=12)

PATHS = [("eventName",), ("eventID",), ("eventSourceARN",), ("dynamodb",), ("dynamodb", "Keys"),
         ("dynamodb", "NewImage"), ("dynamodb", "OldImage"), ("dynamodb", "SequenceNumber"),
         ("dynamodb", "ApproximateCreationDateTime"), ("dynamodb", "NewImage", "email"),
         ("dynamodb", "NewImage", "state"), ("dynamodb", "NewImage", "city"), ("dynamodb", "Keys", "email"),
         ("dynamodb", "NewImage", "email", "S"), ("dynamodb", "NewImage", "items")]


@st.composite
def mangled(draw: st.DrawFn, record: dict[str, Any]) -> Any:
    """`record` broken one way: a field removed or replaced by any JSON, an unknown event name, a
    non-numeric sequence number, an extra field, or no record at all."""
    how = draw(st.sampled_from(["remove", "replace", "event", "sequence", "extra", "whole"]))
    broken = copy.deepcopy(record)
    if how == "whole":
        return draw(lambda_json)
    if how == "event":
        broken["eventName"] = draw(st.sampled_from(["UPSERT", "insert", "", "REMOVE ", "TTL"]) | unicode_text)
        return broken
    if how == "sequence":
        broken["dynamodb"]["SequenceNumber"] = draw(st.sampled_from(["abc", "", "1e5", "-1", "NaN"]) | lambda_json)
        return broken
    if how == "extra":
        broken[draw(unicode_text)] = draw(lambda_json)
        return broken
    path = draw(st.sampled_from(PATHS))
    parent = broken
    for step in path[:-1]:
        if not isinstance(parent, dict) or step not in parent:
            return broken
        parent = parent[step]
    if isinstance(parent, dict):
        if how == "remove":
            parent.pop(path[-1], None)
        else:
            parent[path[-1]] = draw(lambda_json)
    return broken


STREAM_CONSUMERS = {
    "replication": ("replicate_users", "UsersTable"),
    "fanout": ("fanout_users", "UsersTable"),
    "orders": ("process_orders", "OrdersTable"),
}


def order(n: int) -> dict[str, Any]:
    return {"id": f"order-{n}", "name": "n", "status": "PENDING", "created_at": "2026-11-30T00:00:00.000Z",
            "items": [{"sku": "A", "quantity": 2, "unit_price": 3}]}


@pytest.mark.parametrize("consumer", sorted(STREAM_CONSUMERS))
def test_stream_records_of_any_shape(aws: StageResources, consumer: str) -> None:
    name, table_output = STREAM_CONSUMERS[consumer]
    table = aws[table_output]
    dynamodb = boto3.client("dynamodb")
    totals: Counter[str] = Counter()

    def good_record() -> tuple[dict[str, Any], Any]:
        n = next(_serial)
        if consumer == "orders":
            item = order(n)
            dynamodb.put_item(TableName=table, Item={k: _typed(v) for k, v in item.items()})
            return insert(item, ("id",), table=table), item["id"]
        item = user(n)
        return insert(item, table=table), item

    @RELIABILITY_CONSUMERS
    @given(data=st.data(), goods=st.integers(1, 4), bads=st.integers(1, 6))
    def case(data: st.DataObject, goods: int, bads: int) -> None:
        good = [good_record() for _ in range(goods)]
        bad = [data.draw(mangled(good_record()[0])) for _ in range(bads)]
        batch = [record for record, _ in good] + bad
        order_of = data.draw(st.permutations(range(len(batch))))
        batch = [batch[i] for i in order_of]
        handler(name)({"Records": batch}, CONTEXT)  # no crash: it returns
        letters = drain(aws["StreamDlqUrl"])
        assert all(letter["reason"] and letter["consumer"] == consumer for letter in letters), letters
        lettered = [json.dumps(letter["record"], sort_keys=True, default=str) for letter in letters]
        good_ids = {record["eventID"] for record, _ in good}
        assert not any(letter["record"].get("eventID") in good_ids for letter in letters
                       if isinstance(letter["record"], dict)), "a good record was dead-lettered"
        assert len(letters) <= len(bad)
        for letter_text in lettered:  # each letter is one of the batch's records, unchanged
            assert letter_text in {json.dumps(r, sort_keys=True, default=str) for r in bad}
        for record in bad:  # what cannot be a stream record is kept as a letter, never skipped
            if must_be_lettered(record):
                assert json.dumps(record, sort_keys=True, default=str) in lettered, record
        applied = applied_effects(aws, consumer, good)
        assert applied == len(good), f"{applied} of {len(good)} good records applied"
        totals.update(cases=1, records=len(batch), good=len(good), applied=applied, dead_lettered=len(letters),
                      bad=len(bad))

    case()
    figures.record("Consumers under malformed input", consumer=consumer, input="stream records of any shape",
                   cases=totals["cases"], records=totals["records"], applied=totals["applied"],
                   **{"dead-lettered": totals["dead_lettered"], "lost": 0, "crashes": 0},
                   note=f"{totals['bad']:,} malformed; the rest applied, skipped or dead-lettered")


def must_be_lettered(record: Any) -> bool:
    """Not an object, no `dynamodb` object, or an event name streams never emit."""
    return (not isinstance(record, dict) or not isinstance(record.get("dynamodb"), dict)
            or record.get("eventName") not in ("INSERT", "MODIFY", "REMOVE"))


def applied_effects(aws: StageResources, consumer: str, good: list[tuple[dict[str, Any], Any]]) -> int:
    """How many good records had their effect: a target item, an event on the subscriber queue, a processed order."""
    dynamodb = boto3.client("dynamodb")
    if consumer == "replication":
        found = 0
        for _, item in good:
            key = {"state": {"S": item["state"]}, "city_email": {"S": f"{item['city']}#{item['email']}"}}
            found += "Item" in dynamodb.get_item(TableName=aws["UsersByLocationTable"], Key=key, ConsistentRead=True)
        return found
    if consumer == "fanout":
        published = {event["detail"]["eventID"] for event in drain(aws["SubscriberQueueUrl"])}
        return sum(record["eventID"] in published for record, _ in good)
    processed = 0
    for _, order_id in good:
        stored = dynamodb.get_item(TableName=aws["OrdersTable"], Key={"id": {"S": order_id}}, ConsistentRead=True)
        processed += stored["Item"]["status"]["S"] == "PROCESSED"
    return processed


def _typed(value: Any) -> dict[str, Any]:
    from boto3.dynamodb.types import TypeSerializer

    return TypeSerializer().serialize(value)
