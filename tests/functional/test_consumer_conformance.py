"""Stream and queue consumers as the SPEC states them, driven the way Lambda drives them.

Every test invokes the deployed handler names through chalice.test.Client with hand-built events of real
shape (also the sparse shapes some producers send) and checks outcomes in moto's tables and queues.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from chalicelib import clients
from tests.support.events import insert, modify, remove, stream_event
from tests.support.faults import CallCounter, FaultyClient
from tests.support.resources import StageResources

ISO_UTC_MS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


# --- harness -----------------------------------------------------------------------------------------

def drain(url: str) -> list[dict[str, Any]]:
    """Every message body on the queue (parsed), consuming them."""
    sqs = boto3.client("sqs")
    bodies: list[dict[str, Any]] = []
    while True:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        if not messages:
            return bodies
        for message in messages:
            bodies.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


@pytest.fixture
def app_client(aws: StageResources, tmp_path: Path) -> Iterator[Any]:
    """Chalice's test client on stage "dev" whose variables name the moto resources (plus `overrides`)."""
    from chalice.test import Client

    from app import app

    (tmp_path / ".chalice").mkdir()
    (tmp_path / ".chalice" / "config.json").write_text(json.dumps({
        "version": "2.0", "app_name": "stream-pipeline",
        "stages": {"dev": {"environment_variables": aws.env()}},
    }))
    with Client(app, stage_name="dev", project_dir=str(tmp_path)) as client:
        yield client


def user(name: str, city: str = "Albany", state: str = "NY", **extra: Any) -> dict[str, Any]:
    return {"email": f"{name}@example.com", "state": state, "city": city, "zipcode": "01234", "active": True,
            **extra}


# --- fan-out -----------------------------------------------------------------------------------------

def test_fanout_of_a_record_without_source_arn_or_creation_time_still_names_table_and_time(app_client, aws):
    # GIVEN an INSERT record lacking eventSourceARN and ApproximateCreationDateTime (as some producers send)
    record = insert(user("sparse"))
    del record["eventSourceARN"]
    del record["dynamodb"]["ApproximateCreationDateTime"]
    # WHEN fanout_users handles it
    result = app_client.lambda_.invoke("fanout_users", stream_event(record))
    # THEN the event still carries the users table and an ISO-8601 UTC creation time (strings, as documented)
    assert result.payload == {"batchItemFailures": []}
    (event,) = drain(aws["SubscriberQueueUrl"])
    detail = event["detail"]
    assert detail["table"] == aws["UsersTable"]
    assert isinstance(detail["approximateCreationDateTime"], str)
    assert ISO_UTC_MS.match(detail["approximateCreationDateTime"])
    # and Time agrees with it (to the second: EventBridge keeps whole seconds)
    assert event["time"] == detail["approximateCreationDateTime"][:19] + "Z"
    assert drain(aws["StreamDlqUrl"]) == []


# --- replication ---------------------------------------------------------------------------------------

def scan(table: str) -> list[dict[str, Any]]:
    """Every item of `table` as plain values, nothing stripped."""
    from chalicelib.stream.images import plain_item

    pages = boto3.client("dynamodb").get_paginator("scan").paginate(TableName=table)
    return [plain_item(item) for page in pages for item in page["Items"]]


def projection(item: dict[str, Any]) -> dict[str, Any]:
    """The SPEC's target item, written out independently of the product's code."""
    return {"state": item["state"], "city": item["city"], "email": item["email"], "active": item["active"],
            "city_email": f"{item['city']}#{item['email']}"}


def test_replicated_target_items_hold_exactly_the_projection(app_client, aws):
    # GIVEN two users in one city and a third that moves, as stream records
    ada, bob, cy = user("ada"), user("bob"), user("cy", city="Troy")
    moved = {**cy, "city": "Utica", "active": False}
    # WHEN replicate_users handles them
    result = app_client.lambda_.invoke("replicate_users", stream_event(insert(ada), insert(bob), insert(cy),
                                                                       modify(cy, moved)))
    # THEN each target item is exactly state, city, email, active, city_email (no zipcode, nothing else)
    assert result.payload == {"batchItemFailures": []}
    items = sorted(scan(aws["UsersByLocationTable"]), key=lambda item: item["city_email"])
    assert items == [projection(ada), projection(bob), projection(moved)]


def test_ttl_deletes_moves_to_no_city_and_stateless_users_follow_the_projection(app_client, aws):
    # GIVEN ada and bob replicated, then: ada expires by TTL, bob's city is removed, cy arrives without a state
    ada, bob = user("ada"), user("bob")
    cy = {k: v for k, v in user("cy").items() if k != "state"}
    app_client.lambda_.invoke("replicate_users", stream_event(insert(ada), insert(bob)))
    ttl = remove(ada)
    ttl["userIdentity"] = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}
    no_city = {k: v for k, v in bob.items() if k != "city"}
    # WHEN those records are replicated
    result = app_client.lambda_.invoke("replicate_users", stream_event(ttl, modify(bob, no_city), insert(cy)))
    # THEN none of them has a target item, and nothing was dead-lettered
    assert result.payload == {"batchItemFailures": []}
    assert scan(aws["UsersByLocationTable"]) == []
    assert drain(aws["StreamDlqUrl"]) == []


def put_user(aws: StageResources, item: dict[str, Any]) -> None:
    from chalicelib.stream.images import typed_item

    boto3.client("dynamodb").put_item(TableName=aws["UsersTable"], Item=typed_item(item))


def replayer(aws: StageResources, dynamodb: Any = None) -> Any:
    from chalicelib.backoff import Backoff, no_sleep
    from chalicelib.replication.conditional_writer import ConditionalTargetWriter
    from chalicelib.replication.replay import ReplicationReplayer

    writer = ConditionalTargetWriter(dynamodb or boto3.client("dynamodb"), aws["UsersTable"],
                                     aws["UsersByLocationTable"], Backoff(sleep=no_sleep))
    return ReplicationReplayer(writer)


def test_a_replayed_letter_leaves_exactly_the_projection(app_client, aws):
    # GIVEN ada's MODIFY was dead-lettered while the stream had written her older state
    ada, changed = user("ada"), user("ada", active=False)
    app_client.lambda_.invoke("replicate_users", stream_event(insert(ada)))
    put_user(aws, changed)
    # WHEN the letter's record is replayed
    replayer(aws).replay(modify(ada, changed))
    # THEN the target holds exactly her projection, no bookkeeping attribute
    assert scan(aws["UsersByLocationTable"]) == [projection(changed)]


def test_a_change_the_stream_applies_while_a_letter_is_replayed_is_not_overwritten(app_client, aws):
    # GIVEN ada's INSERT was dead-lettered; she is deactivated, and the stream replicates that, in the
    # instant between the replay reading her and writing her item
    ada, deactivated = user("ada"), user("ada", active=False)
    put_user(aws, ada)
    real = boto3.client("dynamodb")
    raced = {"done": False}

    def stream_first(call: Any, **kwargs: Any) -> Any:
        if not raced["done"]:
            raced["done"] = True
            put_user(aws, deactivated)
            app_client.lambda_.invoke("replicate_users", stream_event(modify(ada, deactivated)))
        return call(**kwargs)

    # WHEN the stale INSERT is replayed
    replayer(aws, FaultyClient(real, put_item=stream_first)).replay(insert(ada))
    # THEN the target holds the newer state the stream wrote
    assert raced["done"]
    assert scan(aws["UsersByLocationTable"]) == [projection(deactivated)]


# --- ingestion ---------------------------------------------------------------------------------------

def sighting(user_id: str) -> str:
    return json.dumps({"user_id": user_id, "device": "pixel-9", "location": "Lisbon"})


def test_a_valid_message_without_attributes_is_stored_not_dead_lettered(app_client, aws):
    # GIVEN a hand-built SQS record with only a messageId and a valid body (no attributes at all)
    record = {"messageId": "m-bare", "body": sighting("u-bare"), "eventSource": "aws:sqs"}
    # WHEN ingest_device_metadata handles it
    result = app_client.lambda_.invoke("ingest_device_metadata", {"Records": [record]})
    # THEN it is stored with the SPEC's attributes (the receive time stands in for the send time)
    assert result.payload == {"batchItemFailures": []}
    (item,) = scan(aws["DeviceMetadataTable"])
    assert set(item) == {"user_id", "seen_at", "device", "location", "message_id", "sent_at"}
    assert ISO_UTC_MS.match(item["sent_at"])
    assert item["seen_at"] == f"{item['sent_at']}#m-bare"
    assert (item["user_id"], item["device"], item["location"], item["message_id"]) == (
        "u-bare", "pixel-9", "Lisbon", "m-bare")
    assert drain(aws["IngestDlqUrl"]) == []


def test_without_sent_timestamp_the_first_receive_time_keys_the_item_and_redelivery_rewrites_it(app_client, aws):
    # GIVEN a record whose attributes lack SentTimestamp but carry ApproximateFirstReceiveTimestamp
    record = {"messageId": "m-1", "body": sighting("u-1"),
              "attributes": {"ApproximateFirstReceiveTimestamp": "1795000000123", "ApproximateReceiveCount": "1"}}
    # WHEN it is delivered twice
    for _ in range(2):
        assert app_client.lambda_.invoke("ingest_device_metadata", {"Records": [record]}).payload == {
            "batchItemFailures": []}
    # THEN one item, keyed by that time
    assert [(i["seen_at"], i["sent_at"]) for i in scan(aws["DeviceMetadataTable"])] == [
        ("2026-11-18T11:06:40.123Z#m-1", "2026-11-18T11:06:40.123Z")]
    assert drain(aws["IngestDlqUrl"]) == []


def test_changed_attributes_see_a_change_of_type_even_when_python_calls_the_values_equal(app_client, aws):
    # GIVEN a MODIFY where active goes from BOOL true to N 1 and a nested flag does the same; a set reorders
    from decimal import Decimal

    old = {**user("ada"), "prefs": {"beta": True}, "tags": {"a", "b"}}
    new = {**user("ada", active=Decimal(1)), "prefs": {"beta": Decimal(1)}, "tags": {"b", "a"}}
    # WHEN fanout_users publishes it
    app_client.lambda_.invoke("fanout_users", stream_event(modify(old, new)))
    # THEN exactly the attributes whose DynamoDB value changed are listed, sorted
    (event,) = drain(aws["SubscriberQueueUrl"])
    assert event["detail"]["changedAttributes"] == ["active", "prefs"]


@pytest.fixture
def no_real_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    """Backoffs the components build retry at once (components import Backoff when they run)."""
    from functools import partial

    from chalicelib import backoff

    monkeypatch.setattr(backoff, "Backoff", partial(backoff.Backoff, sleep=backoff.no_sleep))


class ThrottledEvents:
    """EventBridge over moto whose entries for the given eventIDs fail with ThrottlingException `times` times."""

    def __init__(self, real: Any, times: dict[str, int]):
        self._real = real
        self._left = dict(times)
        self.calls = 0

    def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:  # boto3's parameter name
        self.calls += 1
        results: list[dict[str, Any]] = []
        for entry in Entries:
            event_id = json.loads(entry["Detail"])["eventID"]
            if self._left.get(event_id, 0) > 0:
                self._left[event_id] -= 1
                results.append({"ErrorCode": "ThrottlingException", "ErrorMessage": "injected"})
            else:
                results.extend(self._real.put_events(Entries=[entry])["Entries"])
        return {"FailedEntryCount": sum(1 for r in results if "ErrorCode" in r), "Entries": results}


def test_fanout_max_attempts_from_the_stage_is_honoured_exactly_and_the_letter_says_so(
        aws, tmp_path, no_real_sleep):
    from chalice.test import Client

    from app import app
    # GIVEN a stage with FANOUT_MAX_ATTEMPTS=4; one record always throttled, one throttled 3 times
    (tmp_path / ".chalice").mkdir()
    (tmp_path / ".chalice" / "config.json").write_text(json.dumps({
        "version": "2.0", "app_name": "stream-pipeline",
        "stages": {"dev": {"environment_variables": {**aws.env(), "FANOUT_MAX_ATTEMPTS": "4"}}},
    }))
    stuck, late = insert(user("stuck")), insert(user("late"))
    events = ThrottledEvents(boto3.client("events"), {stuck["eventID"]: 99, late["eventID"]: 3})
    clients.override("events", events)
    # WHEN fanout_users handles both
    with Client(app, stage_name="dev", project_dir=str(tmp_path)) as client:
        result = client.lambda_.invoke("fanout_users", stream_event(stuck, late))
    # THEN 4 PutEvents calls were made; the late one is published on its 4th attempt
    assert result.payload == {"batchItemFailures": []}
    assert events.calls == 4
    assert [e["detail"]["eventID"] for e in drain(aws["SubscriberQueueUrl"])] == [late["eventID"]]
    # and the stuck one is dead-lettered in the SPEC's envelope with attempts 4 and its record unchanged
    (letter,) = drain(aws["StreamDlqUrl"])
    assert set(letter) == {"consumer", "reason", "error", "attempts", "failed_at", "record"}
    assert (letter["consumer"], letter["attempts"], letter["record"]) == ("fanout", 4, stuck)
    assert "ThrottlingException" in letter["error"] and letter["reason"]
    assert ISO_UTC_MS.match(letter["failed_at"])


def test_one_item_dynamodb_refuses_does_not_sink_its_neighbours_in_the_same_request(app_client, aws):
    # GIVEN a batch where one user, written around the API, has a city too long for a sort key (> 1024 bytes)
    good = [user(f"ok{n}") for n in range(3)]
    huge = user("huge", city="C" * 1100)
    records = [insert(good[0]), insert(huge), insert(good[1]), insert(good[2])]
    counter = CallCounter(clients.client("dynamodb"))
    # WHEN replicate_users handles it
    result = app_client.lambda_.invoke("replicate_users", stream_event(*records))
    # THEN the good ones are replicated and only the refused one is dead-lettered, unchanged
    assert result.payload == {"batchItemFailures": []}
    assert sorted(scan(aws["UsersByLocationTable"]), key=lambda i: i["email"]) == [projection(u) for u in good]
    letters = drain(aws["StreamDlqUrl"])
    assert [(letter["consumer"], letter["record"]) for letter in letters] == [("replication", records[1])]
    assert "ValidationException" in letters[0]["error"]
    # with the request halved until the refused write stood alone: [a H b c] → [a H] → [a], [H]; [b c]
    assert counter["BatchWriteItem"] == 5


def test_a_throttled_message_fails_the_invocation_while_its_neighbours_are_stored_or_dead_lettered(
        app_client, aws, no_real_sleep):
    from tests.support.events import sqs_message

    # GIVEN a batch of a valid message, an invalid one, and one whose write DynamoDB keeps throttling
    ok, bad, hot = (sqs_message(sighting("u-ok")), sqs_message('{"user_id": "u-bad"}'),
                    sqs_message(sighting("u-hot")))

    def throttle_hot(real: Any, RequestItems: dict[str, Any], **kwargs: Any) -> Any:
        (table, requests), = RequestItems.items()
        hot_requests = [r for r in requests if r["PutRequest"]["Item"]["user_id"] == {"S": "u-hot"}]
        rest = [r for r in requests if r not in hot_requests]
        if rest:
            real(RequestItems={table: rest}, **kwargs)
        return {"UnprocessedItems": {table: hot_requests} if hot_requests else {}}

    clients.override("dynamodb", FaultyClient(boto3.client("dynamodb"), batch_write_item=throttle_hot))
    # WHEN ingest_device_metadata handles it
    with pytest.raises(Exception, match="1 of 3 message"):
        app_client.lambda_.invoke("ingest_device_metadata", {"Records": [ok, bad, hot]})
    # THEN the invocation failed (so Lambda returns what is left, with or without ReportBatchItemFailures),
    # the valid neighbour is stored, the invalid one is dead-lettered with its reason, and the hot one is not stored
    assert [item["user_id"] for item in scan(aws["DeviceMetadataTable"])] == ["u-ok"]
    (letter,) = drain(aws["IngestDlqUrl"])
    assert (letter["consumer"], letter["record"]) == ("ingest", bad)
    assert "device" in letter["reason"] and "location" in letter["reason"]


def test_records_without_event_id_or_sequence_number_are_each_dead_lettered(app_client, aws):
    from tests.support.events import lambda_image
    from tests.support.faults import client_error

    # GIVEN two minimal hand-built INSERT records (no eventID, no SequenceNumber) whose writes are refused
    records = [{"eventName": "INSERT", "dynamodb": {"Keys": lambda_image({"email": u["email"]}),
                                                    "NewImage": lambda_image(u)}}
               for u in (user("ada"), user("bob"))]

    def refuse(real: Any, **kwargs: Any) -> Any:
        raise client_error("ValidationException", "refused")

    clients.override("dynamodb", FaultyClient(boto3.client("dynamodb"), batch_write_item=refuse))
    # WHEN replicate_users handles them
    app_client.lambda_.invoke("replicate_users", {"Records": records})
    # THEN each record has its own dead letter, unchanged
    letters = drain(aws["StreamDlqUrl"])
    assert sorted((letter["record"] for letter in letters), key=json.dumps) == sorted(records, key=json.dumps)
