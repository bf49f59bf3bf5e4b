"""Ingestion against moto: items in DEVICE_METADATA_TABLE, dead letters in INGEST_DLQ_URL, what is left in the queue."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import boto3
import pytest
import yaml
from botocore.exceptions import ClientError

from chalicelib import clients, components
from chalicelib.backoff import Backoff, no_sleep
from chalicelib.batch_writer import BatchWriter
from chalicelib.consumer_runtime import ConsumerRuntime, RetryLater
from chalicelib.dead_letters import DeadLetterQueue
from chalicelib.ingest.consumer import IngestConsumer
from chalicelib.ingest.messages import ITEM_KEY_NAMES
from chalicelib.source_queue import SourceQueue
from tests.conftest import ROOT
from tests.support.events import sqs_event, sqs_message
from tests.support.resources import StageResources

SENT_MS = 1_795_000_000_000


def body(user: str, device: str = "pixel-9", location: str = "Lisbon") -> dict[str, str]:
    return {"user_id": user, "device": device, "location": location}


# --- helpers: the stage's resources through plain boto3 ------------------------------------------


class Stage:
    """The moto resources a test reads and writes, and a consumer wired to them (no sleeping)."""

    def __init__(self, resources: StageResources):
        self.env = env = resources.env()
        self.sqs = boto3.client("sqs")
        self.dynamodb = boto3.client("dynamodb")
        self.table = env["DEVICE_METADATA_TABLE"]
        self.dlq_url = env["INGEST_DLQ_URL"]
        self.queue_url = self.sqs.get_queue_url(QueueName=env["INGEST_QUEUE"])["QueueUrl"]
        self.queue_arn = resources["IngestQueueArn"]
        self.writer: BatchWriter | None = None
        self.source: SourceQueue | None = None

    def consumer(self, dynamodb: Any = None, sqs: Any = None) -> ConsumerRuntime:
        self.writer = BatchWriter(dynamodb or self.dynamodb, self.table, ITEM_KEY_NAMES, Backoff(4, sleep=no_sleep))
        self.source = SourceQueue(sqs or self.sqs, Backoff(4, sleep=no_sleep))
        dead_letters = DeadLetterQueue(sqs or self.sqs, self.dlq_url, backoff=Backoff(3, sleep=no_sleep))
        return ConsumerRuntime(IngestConsumer(self.writer), dead_letters, self.source)

    def items(self) -> list[dict[str, str]]:
        pages = self.dynamodb.get_paginator("scan").paginate(TableName=self.table)
        rows = [{k: v["S"] for k, v in item.items()} for page in pages for item in page["Items"]]
        return sorted(rows, key=lambda row: (row["user_id"], row["seen_at"]))

    def dead_letters(self) -> list[dict[str, Any]]:
        return [json.loads(m["Body"]) for m in receive_all(self.sqs, self.dlq_url)]

    def send(self, bodies: list[Any]) -> list[dict[str, Any]]:
        """Send `bodies` to the ingest queue and receive them back as Lambda records (real receipt handles)."""
        for start in range(0, len(bodies), 10):
            self.sqs.send_message_batch(QueueUrl=self.queue_url, Entries=[
                {"Id": str(i), "MessageBody": b if isinstance(b, str) else json.dumps(b)}
                for i, b in enumerate(bodies[start:start + 10])
            ])
        records = [lambda_record(m, self.queue_arn) for m in receive_all(self.sqs, self.queue_url)]
        assert len(records) == len(bodies)
        return records

    def left_in_queue(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The messages still in the ingest queue, made visible again and received as Lambda records."""
        for start in range(0, len(records), 10):  # deleted messages answer Failed here: that is the point
            self.sqs.change_message_visibility_batch(QueueUrl=self.queue_url, Entries=[
                {"Id": str(i), "ReceiptHandle": r["receiptHandle"], "VisibilityTimeout": 0}
                for i, r in enumerate(records[start:start + 10])
            ])
        return [lambda_record(m, self.queue_arn) for m in receive_all(self.sqs, self.queue_url)]


def receive_all(sqs: Any, url: str) -> list[dict[str, Any]]:
    """Every visible message of a queue (each then hidden for the queue's visibility timeout)."""
    found: list[dict[str, Any]] = []
    while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, MessageSystemAttributeNames=["All"],
                                       ).get("Messages", []):
        found.extend(batch)
    return found


def lambda_record(message: dict[str, Any], queue_arn: str) -> dict[str, Any]:
    """A received SQS message in the shape Lambda hands to the function."""
    return {
        "messageId": message["MessageId"], "receiptHandle": message["ReceiptHandle"], "body": message["Body"],
        "attributes": message["Attributes"], "messageAttributes": {}, "md5OfBody": message["MD5OfBody"],
        "eventSource": "aws:sqs", "eventSourceARN": queue_arn, "awsRegion": "us-east-1",
    }


class Faulty:
    """A real client whose `operation` is rewritten by `fault(real_method, **kwargs)`."""

    def __init__(self, real: Any, operation: str, fault: Callable[..., Any]):
        self._real, self._operation, self._fault = real, operation, fault

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._real, name)
        return (lambda **kw: self._fault(method, **kw)) if name == self._operation else method


def throttled(error: str, user_ids: set[str] | None = None) -> Callable[..., Any]:
    """BatchWriteItem fault, as seen after botocore's own retries gave up: the writes of `user_ids`
    (all when None) never land, as UnprocessedItems or, with `error`, as that error on any call touching them."""

    def fault(real: Callable[..., Any], RequestItems: dict[str, list[dict[str, Any]]], **kw: Any) -> Any:
        (table, requests), = RequestItems.items()
        hit = [r for r in requests if user_ids is None or r["PutRequest"]["Item"]["user_id"]["S"] in user_ids]
        if hit and error != "UnprocessedItems":
            raise ClientError({"Error": {"Code": error, "Message": "Rate of requests exceeds the allowed"}},
                              "BatchWriteItem")
        rest = [r for r in requests if r not in hit]
        if rest:
            real(RequestItems={table: rest}, **kw)
        return {"UnprocessedItems": {table: hit} if hit else {}}

    return fault


@pytest.fixture
def stage(aws: StageResources) -> Stage:
    return Stage(aws)


# --- a batch of good and bad messages ------------------------------------------------------------

TEXT_RULE = "must be a string of 1 to 256 characters"
INVALID = {
    "not-json": ("{not json", "body: must be a JSON object, got invalid JSON"),
    "not-object": ('["u", "d", "l"]', "body: must be a JSON object, got array"),
    "missing": (json.dumps({"user_id": "u-9", "device": "d"}), "location: required"),
    "empty": (json.dumps(body("")), f"user_id: {TEXT_RULE}, got an empty string"),
    "blank": (json.dumps(body("u-9", device="  ")), f"device: {TEXT_RULE}, got a blank string"),
    "non-string": (json.dumps({**body("u-9"), "location": 7}), f"location: {TEXT_RULE}, got number"),
    "too-long": (json.dumps(body("u-9", device="d" * 257)), f"device: {TEXT_RULE}, got 257 characters"),
}


def mixed_batch() -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Three valid messages and one of every kind of invalid one; and the reason expected per invalid id."""
    records = [sqs_message({**body(f"u-{n}"), "extra": "ignored"}, sent_at_ms=SENT_MS + n) for n in range(3)]
    expected: dict[str, str] = {}
    for name, (text, reason) in INVALID.items():
        record = sqs_message(text, message_id=f"bad-{name}")
        records.append(record)
        expected[record["messageId"]] = reason
    no_sent = sqs_message(body("u-9"), message_id="bad-sent-timestamp")
    no_sent["attributes"]["SentTimestamp"] = "yesterday"
    no_id = sqs_message(body("u-9"))
    del no_id["messageId"]
    records += [no_sent, no_id]
    expected["bad-sent-timestamp"] = 'attributes.SentTimestamp: must be epoch milliseconds, got "yesterday"'
    expected["<none>"] = "messageId: required"
    return records, expected


def test_valid_messages_are_stored_and_each_invalid_one_is_dead_lettered_with_its_reason(stage: Stage):
    # GIVEN a batch mixing valid messages with every kind of invalid one
    records, expected = mixed_batch()
    consumer = stage.consumer()
    # WHEN it is handled
    answer = consumer.handle(records)
    # THEN the valid ones are stored (exactly the SPEC's attributes, unknown fields dropped) ...
    assert answer == {"batchItemFailures": []}
    assert stage.items() == [
        {"user_id": f"u-{n}", "seen_at": f"{iso(SENT_MS + n)}#{records[n]['messageId']}", "device": "pixel-9",
         "location": "Lisbon",
         "message_id": records[n]["messageId"], "sent_at": iso(SENT_MS + n)}
        for n in range(3)
    ]
    # ... and every invalid one is in the DLQ once, with its message id, reason and unchanged record
    letters = stage.dead_letters()
    got = {letter["record"].get("messageId", "<none>"): letter["reason"] for letter in letters}
    assert got == expected
    # never sent anywhere: attempts 0
    assert all(letter["consumer"] == "ingest" and letter["attempts"] == 0 for letter in letters)
    assert all(letter["error"].startswith("InvalidMessage: ") for letter in letters)
    originals = {r.get("messageId", "<none>"): r for r in records}
    assert all(letter["record"] == originals[letter["record"].get("messageId", "<none>")] for letter in letters)
    # ... with one BatchWriteItem call and no call to the source queue (nothing failed, nothing to delete)
    assert consumer_calls(stage) == (1, 0)
    # ... and nothing anywhere else
    assert receive_all(stage.sqs, stage.env["STREAM_DLQ_URL"]) == []


def test_the_same_batch_delivered_three_times_leaves_the_same_items(stage: Stage):
    records, _ = mixed_batch()
    stage.consumer().handle(records)
    first = stage.items()
    stage.consumer().handle(records)
    stage.consumer().handle(records)
    assert stage.items() == first and len(first) == 3


def test_one_message_twice_in_a_batch_is_one_write(stage: Stage):
    # GIVEN the same message delivered twice in one batch (SQS is at-least-once): one key, two receipt handles
    once = sqs_message(body("u-1"), message_id="m-1", sent_at_ms=SENT_MS, receipt_handle="r-1")
    twice = sqs_message(body("u-1"), message_id="m-1", sent_at_ms=SENT_MS, receipt_handle="r-2", receive_count=2)
    consumer = stage.consumer()
    # WHEN handled, BatchWriteItem does not reject the request, and one item results
    assert consumer.handle([once, twice, sqs_message(body("u-2"))]) == {"batchItemFailures": []}
    assert [item["user_id"] for item in stage.items()] == ["u-1", "u-2"]
    assert consumer_calls(stage) == (1, 0)


def test_a_full_batch_goes_in_batches_of_25(stage: Stage):
    consumer = stage.consumer()
    consumer.handle([sqs_message(body(f"u-{n:03d}")) for n in range(100)])
    assert len(stage.items()) == 100
    assert consumer_calls(stage) == (4, 0)


def test_an_empty_event_does_nothing(stage: Stage):
    assert stage.consumer().handle([]) == {"batchItemFailures": []}
    assert stage.items() == [] and stage.dead_letters() == []


# --- passing failures: delete what is done, raise so the rest comes back -------------------------

def test_throttled_writes_stay_in_the_queue_and_finished_messages_are_gone(stage: Stage):
    # GIVEN 24 valid and 2 invalid messages received from the real (moto) ingest queue
    records = stage.send([body(f"u-{n:02d}") for n in range(24)] + ["{nope", "[]"])
    throttled_users = {"u-03", "u-07", "u-19"}
    # WHEN BatchWriteItem keeps leaving three users' writes unprocessed
    consumer = stage.consumer(dynamodb=Faulty(stage.dynamodb, "batch_write_item",
                                              throttled("UnprocessedItems", throttled_users)))
    with pytest.raises(RetryLater) as raised:
        consumer.handle(records)
    # THEN the handler fails, naming what comes back
    assert raised.value.remaining == 3 and raised.value.undeleted == 0
    assert str(raised.value).startswith("3 of 26 message(s) remain in the queue for retry")
    # ... the other 21 are stored, the invalid ones dead-lettered
    assert {item["user_id"] for item in stage.items()} == {f"u-{n:02d}" for n in range(24)} - throttled_users
    assert len(stage.dead_letters()) == 2
    # ... and only the three throttled messages are left in the queue: finished ones were deleted
    left = stage.left_in_queue(records)
    assert sorted(json.loads(r["body"])["user_id"] for r in left) == sorted(throttled_users)
    # ... at the cost of 1 GetQueueUrl and 3 DeleteMessageBatch calls (23 finished messages)
    assert consumer_calls(stage) == (4, 4)

    # WHEN Lambda delivers them again and the table has capacity
    assert stage.consumer().handle(left) == {"batchItemFailures": []}
    # THEN none is lost: all 24 stored once, no new dead letter; (Lambda then deletes the batch)
    assert [item["user_id"] for item in stage.items()] == [f"u-{n:02d}" for n in range(24)]
    assert stage.dead_letters() == []


@pytest.mark.parametrize("error", ["ProvisionedThroughputExceededException", "ThrottlingException"])
def test_a_throttled_table_keeps_every_valid_message_in_the_queue(stage: Stage, error: str):
    # GIVEN valid and invalid messages from the real queue, and a table that throttles every call
    records = stage.send([body("u-1"), body("u-2"), {"user_id": "u-3"}])
    consumer = stage.consumer(dynamodb=Faulty(stage.dynamodb, "batch_write_item", throttled(error)))
    # WHEN the batch is handled
    with pytest.raises(RetryLater, match=error):
        consumer.handle(records)
    # THEN nothing is stored, the invalid message is dead-lettered and deleted, the valid ones stay
    assert stage.items() == []
    reasons = [letter["reason"] for letter in stage.dead_letters()]
    assert reasons == ["device: required; location: required"]
    assert sorted(json.loads(r["body"])["user_id"] for r in stage.left_in_queue(records)) == ["u-1", "u-2"]
    assert consumer_calls(stage) == (4, 2)  # 4 write attempts; GetQueueUrl + 1 DeleteMessageBatch


def test_when_the_dead_letter_queue_is_down_invalid_messages_stay_in_the_queue(stage: Stage):
    # GIVEN a DLQ that refuses every message
    def refuse(real: Callable[..., Any], **kw: Any) -> Any:
        raise ClientError({"Error": {"Code": "ServiceUnavailable", "Message": "down"}}, "SendMessageBatch")

    records = stage.send([body("u-1"), "not json", body("u-2")])
    consumer = stage.consumer(sqs=Faulty(stage.sqs, "send_message_batch", refuse))
    # WHEN the batch is handled
    with pytest.raises(RetryLater, match="1 × SendMessageBatch: ServiceUnavailable"):
        consumer.handle(records)
    # THEN valid ones are stored and deleted, the invalid one is neither lost nor dead-lettered: it comes back
    assert [item["user_id"] for item in stage.items()] == ["u-1", "u-2"]
    assert stage.dead_letters() == []
    assert [r["body"] for r in stage.left_in_queue(records)] == ["not json"]


def test_deletes_sqs_reports_as_failed_are_retried_and_a_bad_handle_is_reported(stage: Stage):
    # GIVEN a queue that fails the first delete of every entry once (a passing fault) ...
    failed_once: set[str] = set()

    def flaky(real: Callable[..., Any], QueueUrl: str, Entries: list[dict[str, str]]) -> Any:
        fresh = [e for e in Entries if e["ReceiptHandle"] not in failed_once]
        failed_once.update(e["ReceiptHandle"] for e in fresh)
        answer = real(QueueUrl=QueueUrl, Entries=[e for e in Entries if e not in fresh]) if len(fresh) < len(
            Entries) else {"Successful": [], "Failed": []}
        answer.setdefault("Failed", []).extend(
            {"Id": e["Id"], "SenderFault": False, "Code": "InternalError", "Message": "try again"} for e in fresh)
        return answer

    received = stage.send([body(f"u-{n}") for n in range(12)])
    records = list(received)
    # ... and one finished message whose receipt handle has gone stale (a sender fault: not retried)
    records[5] = {**records[5], "receiptHandle": "stale-handle"}
    consumer = stage.consumer(
        dynamodb=Faulty(stage.dynamodb, "batch_write_item", throttled("UnprocessedItems", {"u-0"})),
        sqs=Faulty(stage.sqs, "delete_message_batch", flaky),
    )
    # WHEN one write keeps failing, so the finished 11 must be deleted by the consumer
    with pytest.raises(RetryLater) as raised:
        consumer.handle(records)
    # THEN the retried deletes land; the stale one is reported and will be delivered again (same item rewritten)
    assert raised.value.remaining == 1 and raised.value.undeleted == 1
    assert "1 finished message(s) could not be deleted" in str(raised.value)
    stale_message = records[5]["messageId"]
    left = stage.left_in_queue(received)
    assert sorted(r["messageId"] for r in left) == sorted([records[0]["messageId"], stale_message])
    # GetQueueUrl once; two chunks (10 + 1), each failed once and sent again
    assert consumer_calls(stage) == (4, 5)


def test_a_queue_that_cannot_be_found_deletes_nothing_and_loses_nothing(stage: Stage):
    records = [sqs_message(body("u-1")), sqs_message(body("u-2"))]
    for record in records:
        record["eventSourceARN"] = "arn:aws:sqs:us-east-1:123456789012:no-such-queue"
    consumer = stage.consumer(dynamodb=Faulty(stage.dynamodb, "batch_write_item",
                                              throttled("UnprocessedItems", {"u-1"})))
    with pytest.raises(RetryLater) as raised:
        consumer.handle(records)
    assert raised.value.remaining == 1 and raised.value.undeleted == 1
    assert [item["user_id"] for item in stage.items()] == ["u-2"]


# --- wiring --------------------------------------------------------------------------------------

def test_the_app_handler_stores_messages_through_the_components(chalice_client: Any, aws: StageResources):
    # GIVEN the deployed handler name and a batch with one valid and one invalid message
    event = sqs_event(sqs_message(body("u-1"), sent_at_ms=SENT_MS), sqs_message("nope", message_id="bad"))
    # WHEN Lambda invokes it
    answer = chalice_client.lambda_.invoke("ingest_device_metadata", event)  # type: ignore[attr-defined]
    # THEN the item is in the stage's table and the dead letter in the stage's DLQ
    assert answer.payload == {"batchItemFailures": []}
    stage = Stage(aws)
    assert [(i["user_id"], i["sent_at"]) for i in stage.items()] == [("u-1", iso(SENT_MS))]
    assert [(d["record"]["messageId"], d["reason"]) for d in stage.dead_letters()] == [
        ("bad", "body: must be a JSON object, got invalid JSON")]


def test_the_event_source_is_tuned_for_throughput_and_the_queue_outlasts_retries():
    from app import app

    (source,) = [s for s in app.event_sources if s.name == "ingest_device_metadata"]  # type: ignore[attr-defined]
    assert (source.queue, source.batch_size, source.maximum_batching_window_in_seconds) == (
        "stream-pipeline-test-ingest", 100, 1)
    # the function's timeout (deploy config) and the queue's visibility timeout (template) keep their ratio
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    timeout = config["lambda_functions"]["ingest_device_metadata"]["lambda_timeout"]
    template = yaml.load((ROOT / "infra" / "template.yaml").read_text(), Loader=_CfnLoader)
    visibility = template["Parameters"]["IngestVisibilityTimeout"]["Default"]
    assert visibility >= 6 * timeout


def test_the_component_getter_assembles_the_consumer_from_the_stage(stage: Stage):
    clients.reset()
    records = [sqs_message(body("u-1"))]
    assert components.ingest_consumer().handle(records) == {"batchItemFailures": []}
    assert [item["user_id"] for item in stage.items()] == ["u-1"]


# --- small helpers -------------------------------------------------------------------------------

def iso(epoch_ms: int) -> str:
    from chalicelib.clock import iso_utc
    from chalicelib.ingest.messages import sent_time

    moment = sent_time(epoch_ms)
    assert moment is not None
    return iso_utc(moment)


def consumer_calls(stage: Stage) -> tuple[int, int]:
    """(BatchWriteItem calls, source-queue calls) of the last consumer built."""
    assert stage.writer is not None and stage.source is not None
    return stage.writer.calls, stage.source.calls


class _CfnLoader(yaml.SafeLoader):
    """Reads CloudFormation's short-form tags (!Ref, !Sub, !GetAtt) as plain values."""


_CfnLoader.add_multi_constructor("!", lambda loader, suffix, node: None)
