"""Fan-out with moto: stream records → EventBridge bus → the template's subscriber queue, and the DLQ.

moto delivers bus events to SQS targets in-process, so these tests read what a subscriber receives.
One moto artifact: its EventBridge parses Detail with `json.loads` before delivery, so a number with more
digits than a float holds reaches the subscriber queue rounded; what the fan-out sends is checked on the
wire (the PutEvents request body), where every digit is present.
"""

from __future__ import annotations

import base64
import json
from collections import Counter
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ParamValidationError

from chalicelib import clients, components
from chalicelib.backoff import Backoff, no_sleep
from chalicelib.consumer_runtime import ConsumerRuntime
from chalicelib.dead_letters import DeadLetterQueue, DeadLetterQueueUnavailable
from chalicelib.fanout.consumer import FanoutConsumer
from chalicelib.fanout.publisher import EventPublisher
from tests.support.events import insert, modify, remove, stream_event, stream_record
from tests.support.resources import StageResources

SOURCE = "stream-pipeline.users"
CREATED = 1795000000  # 2026-11-18T11:06:40Z

EVERY_TYPE = {
    "email": "every@example.com",
    "s": "text with ünïcödé",
    "n": Decimal("12345678901234567890.123456789"),
    "int": Decimal("-7"),
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
    "email": "every@example.com",
    "s": "text with ünïcödé",
    "n": Decimal("12345678901234567890.123456789"),
    "int": Decimal("-7"),
    "b": base64.b64encode(b"\x00\xffbinary").decode(),
    "ss": ["apple", "fig", "pear"],
    "ns": [Decimal("-1"), Decimal("2.5"), Decimal("10")],
    "bs": [base64.b64encode(b"\x01").decode(), base64.b64encode(b"\x02").decode()],
    "m": {"nested": {"deep": [Decimal("1"), "x", None]}},
    "l": [Decimal("0.1"), True, None, base64.b64encode(b"\x03").decode()],
    "bool": False,
    "null": None,
}


# --- harness -------------------------------------------------------------------------------------

class Wire:
    """The PutEvents requests a client actually sends over HTTP (entries per call, Detail as text)."""

    def __init__(self, client: Any):
        self.calls: list[list[dict[str, Any]]] = []
        client.meta.events.register("before-send.events.PutEvents", self._record)

    def _record(self, request: Any, **_: Any) -> None:
        self.calls.append(json.loads(request.body)["Entries"])

    def details(self) -> list[dict[str, Any]]:
        """Every Detail sent, parsed without losing digits."""
        return [json.loads(e["Detail"], parse_float=Decimal, parse_int=Decimal) for call in self.calls for e in call]


class FlakyEvents:
    """An EventBridge client over moto whose chosen entries fail (by eventID) on their first sends.

    `fail[event_id]` = how many sends of that entry fail with `code`; `call_errors` = ClientErrors the
    next whole calls raise. `sent` keeps the eventIDs of every PutEvents call made through it.
    """

    def __init__(self, real: Any, fail: dict[str, int] | None = None, code: str = "ThrottlingException",
                 call_errors: list[Exception] | None = None):
        self._real = real
        self._left = dict(fail or {})
        self._code = code
        self._call_errors = list(call_errors or [])
        self.sent: list[list[str]] = []

    def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:  # boto3's parameter name
        ids = [json.loads(entry["Detail"])["eventID"] for entry in Entries]
        self.sent.append(ids)
        if self._call_errors:
            raise self._call_errors.pop(0)
        failing = {i for i in ids if self._left.get(i, 0) > 0}
        passing = [entry for entry, i in zip(Entries, ids, strict=True) if i not in failing]
        delivered = iter(self._real.put_events(Entries=passing)["Entries"] if passing else [])
        results = []
        for i in ids:
            if i in failing:
                self._left[i] -= 1
                results.append({"ErrorCode": self._code, "ErrorMessage": "injected"})
            else:
                results.append(next(delivered))
        return {"FailedEntryCount": len(failing), "Entries": results}


def client_error(code: str, status: int = 400) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "injected"},
                        "ResponseMetadata": {"HTTPStatusCode": status}}, "PutEvents")


class RecordingSleeper:
    def __init__(self) -> None:
        self.slept: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.slept.append(seconds)


def publisher_for(aws: StageResources, events: Any = None, *, max_attempts: int = 3, bus: str | None = None,
                  sleep: Callable[[float], None] = no_sleep) -> EventPublisher:
    """A publisher over moto (or a fault injector); retries never sleep for real (the sleeper is injected)."""
    return EventPublisher(events or boto3.client("events"), bus or aws["EventBusName"],
                          Backoff(max_attempts=max_attempts, sleep=sleep, rand=lambda: 1.0))


def fanout(aws: StageResources, events: Any = None, *, max_attempts: int = 3, bus: str | None = None,
           dlq_url: str | None = None, sleep: Callable[[float], None] = no_sleep,
           publisher: EventPublisher | None = None) -> ConsumerRuntime:
    """A FanoutConsumer over the stage's bus and DLQ in moto."""
    dead_letters = DeadLetterQueue(boto3.client("sqs"), dlq_url or aws["StreamDlqUrl"],
                                   backoff=Backoff(max_attempts=2, sleep=no_sleep))
    return ConsumerRuntime(FanoutConsumer(publisher or publisher_for(aws, events, max_attempts=max_attempts, bus=bus,
                                                                     sleep=sleep), SOURCE), dead_letters)


def drain(url: str) -> list[dict[str, Any]]:
    """Every message body on the queue (parsed), consuming them."""
    sqs = boto3.client("sqs")
    bodies: list[dict[str, Any]] = []
    while True:
        answer = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
        messages = answer.get("Messages", [])
        if not messages:
            return bodies
        for message in messages:
            bodies.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


def delivered(aws: StageResources) -> list[dict[str, Any]]:
    """Events the template's example subscriber received."""
    return drain(aws["SubscriberQueueUrl"])


def dead_letters(aws: StageResources) -> list[dict[str, Any]]:
    return drain(aws["StreamDlqUrl"])


def users(count: int, prefix: str = "user") -> list[dict[str, Any]]:
    return [insert({"email": f"{prefix}{i}@example.com", "state": "TX", "city": "Austin", "zipcode": "00501"},
                   created_at=CREATED) for i in range(count)]


# --- events as subscribers see them --------------------------------------------------------------

def test_insert_modify_remove_arrive_with_exact_values_for_every_dynamodb_type(aws):
    # GIVEN an INSERT, a MODIFY and a REMOVE of an item holding every DynamoDB type
    changed = {**EVERY_TYPE, "s": "changed", "extra": Decimal("0.000000000000000000000000000001")}
    records = [insert(EVERY_TYPE, created_at=CREATED),
               modify(EVERY_TYPE, changed, created_at=CREATED + 1),
               remove(changed, created_at=CREATED + 2)]
    events = boto3.client("events")
    wire = Wire(events)
    # WHEN the fan-out handles the batch
    answer = fanout(aws, events).handle(records)
    # THEN every record went out in one call, with every digit, base64 binary, sorted sets and null
    assert answer == {"batchItemFailures": []}
    assert len(wire.calls) == 1
    changed_json = {**EVERY_TYPE_JSON, "s": "changed", "extra": Decimal("0.000000000000000000000000000001")}
    expected = [
        ("INSERT", EVERY_TYPE_JSON, None, [], "2026-11-18T11:06:40.000Z"),
        ("MODIFY", changed_json, EVERY_TYPE_JSON, ["extra", "s"], "2026-11-18T11:06:41.000Z"),
        ("REMOVE", None, changed_json, [], "2026-11-18T11:06:42.000Z"),
    ]
    sent = wire.details()
    for raw, detail, (name, new, old, changed_names, created) in zip(records, sent, expected, strict=True):
        assert detail == {
            "eventID": raw["eventID"], "eventName": name, "table": "stream-pipeline-test-users",
            "sequenceNumber": raw["dynamodb"]["SequenceNumber"], "approximateCreationDateTime": created,
            "keys": {"email": "every@example.com"}, "newImage": new, "oldImage": old,
            "changedAttributes": changed_names, "truncated": False,
        }
    assert '"n":12345678901234567890.123456789' in wire.calls[0][0]["Detail"]
    # AND the subscriber receives one event per record with the source, detail type and record time
    received = {event["detail"]["eventID"]: event for event in delivered(aws)}
    assert len(received) == 3
    for call_entry, raw, (name, *_rest) in zip(wire.calls[0], records, expected, strict=True):
        event = received[raw["eventID"]]
        assert event["source"] == SOURCE and event["detail-type"] == name
        assert event["time"] == f"2026-11-18T11:06:4{records.index(raw)}Z"
        # moto re-parses Detail as floats before delivery; the rest arrives exactly as sent
        assert event["detail"] == json.loads(call_entry["Detail"])
    assert dead_letters(aws) == []


def test_57_records_are_published_in_6_calls_each_delivered_once(aws):
    records = users(57)
    events = boto3.client("events")
    wire = Wire(events)
    publisher = publisher_for(aws, events)
    fanout(aws, publisher=publisher).handle(records)
    assert len(wire.calls) == 6 and [len(call) for call in wire.calls] == [10, 10, 10, 10, 10, 7]
    assert publisher.calls == 6 and publisher.published == 57
    counts = Counter(event["detail"]["eventID"] for event in delivered(aws))
    assert counts == Counter(raw["eventID"] for raw in records)
    assert set(counts.values()) == {1}


def test_large_entries_are_packed_by_request_size(aws):
    # GIVEN three records of ~100 KB each (two fit one 256 KiB request, three do not)
    records = [insert({"email": f"big{i}@example.com", "blob": "x" * 100_000}, created_at=CREATED) for i in range(3)]
    events = boto3.client("events")
    wire = Wire(events)
    fanout(aws, events).handle(records)
    assert [len(call) for call in wire.calls] == [2, 1]
    assert sorted(e["detail"]["eventID"] for e in delivered(aws)) == sorted(r["eventID"] for r in records)


def test_an_oversized_item_is_published_truncated_with_its_keys(aws):
    # GIVEN a record whose item (300 KB, legal in DynamoDB) is over EventBridge's 256 KiB, and a small one
    big = insert({"email": "big@example.com", "blob": "x" * 300_000, "city": "Austin"}, created_at=CREATED)
    small = users(1)[0]
    # WHEN fanned out
    fanout(aws).handle([big, small])
    # THEN the big one arrives with null images and "truncated": true; the small one is whole
    received = {event["detail"]["eventID"]: event["detail"] for event in delivered(aws)}
    assert received[big["eventID"]]["truncated"] is True
    assert received[big["eventID"]]["newImage"] is None and received[big["eventID"]]["oldImage"] is None
    assert received[big["eventID"]]["keys"] == {"email": "big@example.com"}
    assert received[small["eventID"]]["truncated"] is False
    assert received[small["eventID"]]["newImage"]["email"] == "user0@example.com"
    assert dead_letters(aws) == []


# --- failures --------------------------------------------------------------------------------------

def test_a_bus_that_does_not_exist_dead_letters_every_record_intact_without_retrying(aws):
    # GIVEN a bus name that does not exist (a systemic error: retrying or splitting would only burn time)
    records = users(23)
    sleeper = RecordingSleeper()
    publisher = publisher_for(aws, bus="no-such-bus", sleep=sleeper)
    consumer = fanout(aws, publisher=publisher)
    # WHEN the batch is handled
    answer = consumer.handle(records)
    # THEN every record is in the DLQ exactly as Lambda delivered it, after one attempt, and none is on the bus
    assert answer == {"batchItemFailures": []}
    letters = dead_letters(aws)
    assert [letter["record"] for letter in letters] == records
    for letter in letters:
        assert letter["consumer"] == "fanout"
        assert letter["attempts"] == 1
        assert letter["reason"] == "systemic: ResourceNotFoundException"
        assert letter["error"].startswith("ResourceNotFoundException")
        assert letter["failed_at"].endswith("Z")
    # one call per packed request (10 + 10 + 3), no retry, no split
    assert publisher.calls == 3 and publisher.published == 0 and sleeper.slept == []
    assert delivered(aws) == []


def test_partial_failures_retry_exactly_the_failed_entries_and_deliver_each_once(aws):
    # GIVEN 25 records, 3 of which fail on their first send and 1 on its first two sends
    records = users(25)
    ids = [raw["eventID"] for raw in records]
    fail = {ids[1]: 1, ids[12]: 1, ids[24]: 1, ids[7]: 2}
    flaky = FlakyEvents(boto3.client("events"), fail)
    sleeper = RecordingSleeper()
    # WHEN fanned out with 3 attempts
    fanout(aws, flaky, sleep=sleeper).handle(records)
    # THEN attempt 1 sent all, attempt 2 only the 4 failures, attempt 3 only the one still failing
    assert flaky.sent == [ids[0:10], ids[10:20], ids[20:25], [ids[1], ids[7], ids[12], ids[24]], [ids[7]]]
    # AND every record was delivered exactly once, nothing dead-lettered
    assert Counter(e["detail"]["eventID"] for e in delivered(aws)) == Counter(ids)
    assert dead_letters(aws) == []
    # AND the waits grew exponentially (jitter fixed at its maximum here)
    assert sleeper.slept == [0.05, 0.1]


def test_entries_still_failing_after_max_attempts_are_dead_lettered_with_their_attempts(aws):
    records = users(5)
    stuck = records[3]["eventID"]
    flaky = FlakyEvents(boto3.client("events"), {stuck: 99})
    fanout(aws, flaky, max_attempts=4).handle(records)
    assert len(flaky.sent) == 4 and flaky.sent[1:] == [[stuck]] * 3
    letters = dead_letters(aws)
    assert len(letters) == 1
    assert letters[0]["record"] == records[3]
    assert letters[0]["attempts"] == 4
    assert letters[0]["reason"] == "PutEvents failed after 4 attempt(s): ThrottlingException"
    assert letters[0]["error"] == "ThrottlingException: injected"
    assert sorted(e["detail"]["eventID"] for e in delivered(aws)) == sorted(
        r["eventID"] for r in records if r["eventID"] != stuck)


def test_a_rejected_entry_is_not_retried(aws):
    records = users(4)
    bad = records[0]["eventID"]
    flaky = FlakyEvents(boto3.client("events"), {bad: 99}, code="InvalidArgument")
    sleeper = RecordingSleeper()
    fanout(aws, flaky, sleep=sleeper).handle(records)
    assert len(flaky.sent) == 1 and sleeper.slept == []
    letters = dead_letters(aws)
    assert [(letter["record"], letter["attempts"]) for letter in letters] == [(records[0], 1)]
    assert letters[0]["error"] == "InvalidArgument: injected"
    assert letters[0]["reason"] == "PutEvents refused the record: InvalidArgument"
    assert len(delivered(aws)) == 3


@pytest.mark.parametrize("error", [client_error("ThrottlingException"), client_error("InternalException", 500),
                                   client_error("SomethingNew", 503),
                                   EndpointConnectionError(endpoint_url="https://events.example")])
def test_a_throttled_or_failing_whole_call_is_retried(aws, error):
    records = users(12)
    flaky = FlakyEvents(boto3.client("events"), call_errors=[error])
    fanout(aws, flaky).handle(records)
    ids = [raw["eventID"] for raw in records]
    assert flaky.sent == [ids[:10], ids[10:], ids[:10]]  # the second call went through; the first is resent
    assert Counter(e["detail"]["eventID"] for e in delivered(aws)) == Counter(ids)
    assert dead_letters(aws) == []


@pytest.mark.parametrize("code", ["AccessDeniedException", "UnrecognizedClientException"])
def test_a_whole_call_refused_systemically_is_dead_lettered_after_one_attempt(aws, code):
    records = users(3)
    flaky = FlakyEvents(boto3.client("events"), call_errors=[client_error(code)])
    sleeper = RecordingSleeper()
    fanout(aws, flaky, sleep=sleeper).handle(records)
    assert len(flaky.sent) == 1 and sleeper.slept == []
    letters = dead_letters(aws)
    assert [(letter["record"], letter["attempts"], letter["reason"]) for letter in letters] == [
        (raw, 1, f"systemic: {code}") for raw in records]
    assert delivered(aws) == []


class RefusingEvents(FlakyEvents):
    """EventBridge refusing any whole call that carries the entry of `bad` (the item's fault)."""

    def __init__(self, real: Any, bad: str, error: Exception):
        super().__init__(real)
        self._bad, self._error = bad, error

    def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        if any(json.loads(entry["Detail"])["eventID"] == self._bad for entry in Entries):
            self.sent.append([json.loads(entry["Detail"])["eventID"] for entry in Entries])
            raise self._error
        return super().put_events(Entries=Entries)


@pytest.mark.parametrize("error", [client_error("ValidationException"), ParamValidationError(report="injected")])
def test_a_whole_call_refused_for_one_entry_is_split_until_that_entry_stands_alone(aws, error):
    # GIVEN four records, one of which makes EventBridge refuse any call it is in
    records = users(4)
    ids = [raw["eventID"] for raw in records]
    flaky = RefusingEvents(boto3.client("events"), ids[2], error)
    sleeper = RecordingSleeper()
    # WHEN fanned out
    fanout(aws, flaky, sleep=sleeper).handle(records)
    # THEN the call is halved until the refused entry is alone; the others are published; no retry, no wait
    assert flaky.sent == [ids, ids[:2], ids[2:], [ids[2]], [ids[3]]]
    assert sorted(e["detail"]["eventID"] for e in delivered(aws)) == sorted(ids[:2] + ids[3:])
    (letter,) = dead_letters(aws)
    assert (letter["record"], letter["attempts"]) == (records[2], 1) and sleeper.slept == []


def test_malformed_records_are_dead_lettered_and_the_rest_published(aws):
    # GIVEN a batch with an image that is not DynamoDB JSON and a record that is not an object
    good = users(2)
    bad_image = stream_record("INSERT", {"email": "bad@example.com"}, created_at=CREATED)
    bad_image["dynamodb"]["NewImage"] = {"email": {"S": "bad@example.com"}, "n": {"N": "not-a-number"}}
    not_a_record = "garbage"
    # WHEN handled
    answer = fanout(aws).handle([good[0], bad_image, not_a_record, good[1]])
    # THEN the good ones are published and the bad ones are in the DLQ, unchanged, with the reason
    assert answer == {"batchItemFailures": []}
    assert sorted(e["detail"]["eventID"] for e in delivered(aws)) == sorted(r["eventID"] for r in good)
    letters = {json.dumps(letter["record"]): letter for letter in dead_letters(aws)}
    assert set(letters) == {json.dumps(bad_image), json.dumps(not_a_record)}
    for letter in letters.values():
        assert letter["reason"].startswith("malformed stream record")
        assert letter["attempts"] == 0


def test_an_event_too_large_even_without_images_is_dead_lettered(aws):
    # GIVEN a MODIFY that removed ~270 KB of attribute names: even the truncated event lists them all
    names = {f"attribute_{i:06d}_{'x' * 200}": "a" for i in range(1300)}
    huge = modify({"email": "h@example.com", **names}, {"email": "h@example.com"})
    fanout(aws).handle([huge])
    letters = dead_letters(aws)
    assert [letter["record"] for letter in letters] == [huge]
    assert "over EventBridge's 262144-byte limit" in letters[0]["reason"]
    assert delivered(aws) == []


def test_the_handler_raises_when_the_dead_letter_queue_is_unavailable(aws):
    # GIVEN records that cannot be published and a DLQ that does not exist
    sqs = boto3.client("sqs")
    gone = sqs.create_queue(QueueName="gone-dlq")["QueueUrl"]
    sqs.delete_queue(QueueUrl=gone)
    consumer = fanout(aws, bus="no-such-bus", dlq_url=gone)
    # WHEN the batch is handled THEN it raises, so Lambda retries the batch
    with pytest.raises(DeadLetterQueueUnavailable):
        consumer.handle(users(3))
    assert delivered(aws) == []


# --- through the app --------------------------------------------------------------------------

def test_fanout_users_handler_publishes_the_stream_of_real_api_writes(chalice_client, aws):
    from tests.support.streams import lambda_records_from_stream

    # GIVEN a user created, moved to another city and deleted through the API
    body = {"email": "fan@example.com", "state": "TX", "city": "Austin", "zipcode": "00501"}
    headers = {"Content-Type": "application/json"}
    assert chalice_client.http.post("/users", headers=headers, body=json.dumps(body)).status_code == 201
    assert chalice_client.http.request("PATCH", "/users/fan@example.com", headers=headers,
                                       body=json.dumps({"city": "Dallas"})).status_code == 200
    assert chalice_client.http.delete("/users/fan@example.com").status_code == 204
    records = lambda_records_from_stream(aws["UsersStreamArn"])
    # WHEN the stream's records reach the fanout_users Lambda
    result = chalice_client.lambda_.invoke("fanout_users", stream_event(*records))
    # THEN it succeeds and the subscriber sees INSERT, MODIFY (city changed), REMOVE
    assert result.payload == {"batchItemFailures": []}
    events = sorted(delivered(aws), key=lambda e: int(e["detail"]["sequenceNumber"]))
    assert [e["detail-type"] for e in events] == ["INSERT", "MODIFY", "REMOVE"]
    assert "city" in events[1]["detail"]["changedAttributes"]
    assert events[1]["detail"]["oldImage"]["city"] == "Austin" and events[1]["detail"]["newImage"]["city"] == "Dallas"
    assert all(e["detail"]["table"] == aws["UsersTable"] for e in events)
    assert dead_letters(aws) == []


def test_fanout_max_attempts_comes_from_the_stage_configuration(aws, monkeypatch):
    # GIVEN FANOUT_MAX_ATTEMPTS=1 and an entry that fails once
    monkeypatch.setenv("FANOUT_MAX_ATTEMPTS", "1")
    records = users(2)
    flaky = FlakyEvents(boto3.client("events"), {records[0]["eventID"]: 1})
    clients.override("events", flaky)
    # WHEN the app's consumer handles the batch
    components.fanout_consumer().handle(records)
    # THEN it was not retried: dead-lettered after one attempt
    letters = dead_letters(aws)
    assert [(letter["record"], letter["attempts"]) for letter in letters] == [(records[0], 1)]
    assert len(flaky.sent) == 1


def test_the_readme_pattern_selects_only_modify_events_that_changed_city(aws):
    # GIVEN a consumer subscribed with the README's pattern
    events, sqs = boto3.client("events"), boto3.client("sqs")
    queue = sqs.create_queue(QueueName="city-changes")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    pattern = {"source": [SOURCE], "detail-type": ["MODIFY"], "detail": {"changedAttributes": ["city"]}}
    events.put_rule(Name="city-changes", EventBusName=aws["EventBusName"], EventPattern=json.dumps(pattern))
    events.put_targets(Rule="city-changes", EventBusName=aws["EventBusName"],
                       Targets=[{"Id": "queue", "Arn": queue_arn}])
    user = {"email": "c@example.com", "state": "TX", "city": "Austin", "zipcode": "00501"}
    moved = modify(user, {**user, "city": "Dallas", "zipcode": "75001"})
    rezipped = modify(user, {**user, "zipcode": "78701"})
    # WHEN an INSERT, a MODIFY of city, a MODIFY of zipcode only and a REMOVE are fanned out
    fanout(aws).handle([insert(user), moved, rezipped, remove(user)])
    # THEN only the city change reaches that consumer; the catch-all example subscriber gets all four
    received = drain(queue)
    assert [e["detail"]["eventID"] for e in received] == [moved["eventID"]]
    assert received[0]["detail"]["changedAttributes"] == ["city", "zipcode"]
    assert len(delivered(aws)) == 4
