"""The order job end to end: API → orders table → real stream records from moto → process_orders →
table, and what happens on redelivery, malformed orders, throttling and a dead-letter queue that is down."""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from chalicelib import clients
from chalicelib.backoff import Backoff, no_sleep
from chalicelib.consumer_runtime import ConsumerRuntime, Outcome
from chalicelib.dead_letters import DeadLetterQueue, DeadLetterQueueUnavailable
from chalicelib.orders import processing
from chalicelib.orders.processing import OrderProcessor
from chalicelib.orders.repository import OrdersRepository
from chalicelib.stream.images import plain_item
from tests.support.events import stream_event
from tests.support.streams import StreamReader

JSON = {"Content-Type": "application/json"}
ORDER = {"name": "Ada's order", "items": [{"sku": "SKU-1", "quantity": 3, "unit_price": 19.99},
                                         {"sku": "SKU-2", "quantity": 1, "unit_price": 0.10}]}


class Faulty:
    """A real client whose `operation` raises `code` for the first `times` calls (forever when None)."""

    def __init__(self, real: Any, operation: str, code: str, times: int | None = None):
        self._real, self._operation, self._code, self._left = real, operation, code, times
        self.faults = 0

    def __getattr__(self, name: str) -> Any:
        real = getattr(self._real, name)
        if name != self._operation:
            return real

        def call(**kwargs: Any) -> Any:
            if self._left is None or self._left > 0:
                self._left = None if self._left is None else self._left - 1
                self.faults += 1
                raise ClientError({"Error": {"Code": self._code, "Message": "injected"}}, name)
            return real(**kwargs)

        return call


def post_order(client: Any, body: Any = ORDER) -> dict[str, Any]:
    response = client.http.post("/orders", headers=JSON, body=json.dumps(body))
    assert response.status_code == 202, response.body
    return response.json_body


def stored(aws: Any, order_id: str) -> dict[str, Any]:
    answer = boto3.client("dynamodb").get_item(TableName=aws["OrdersTable"], Key={"id": {"S": order_id}},
                                               ConsistentRead=True)
    return plain_item(answer["Item"])


def table(aws: Any) -> dict[str, dict[str, Any]]:
    items = boto3.client("dynamodb").scan(TableName=aws["OrdersTable"], ConsistentRead=True)["Items"]
    return {item["id"]["S"]: plain_item(item) for item in items}


def put_raw(aws: Any, item: dict[str, Any]) -> None:
    """Write an order around the API (typed attributes as given)."""
    boto3.client("dynamodb").put_item(TableName=aws["OrdersTable"], Item=item)


def dead_letters(aws: Any) -> list[dict[str, Any]]:
    sqs = boto3.client("sqs")
    bodies: list[dict[str, Any]] = []
    while True:
        answer = sqs.receive_message(QueueUrl=aws["StreamDlqUrl"], MaxNumberOfMessages=10, WaitTimeSeconds=0)
        messages = answer.get("Messages", [])
        if not messages:
            return bodies
        for message in messages:
            bodies.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=aws["StreamDlqUrl"], ReceiptHandle=message["ReceiptHandle"])


class Job:
    """The order job as Lambda runs it (the consumer runtime around OrderProcessor), keeping its last Outcome."""

    def __init__(self, processor: OrderProcessor, dead_letters: DeadLetterQueue):
        self.processor = processor
        self.runtime = ConsumerRuntime(processor, dead_letters)
        self.last = Outcome("orders", [])

    @property
    def calls(self) -> int:
        return self.processor.calls

    def handle(self, records: list[Any]) -> Any:
        self.last = self.runtime.process(records)
        return self.runtime.deliver(self.last)


def processor(aws: Any, dynamodb: Any = None, sqs: Any = None, backoff: Backoff | None = None) -> Job:
    """The job over moto (or faulty) clients, retrying without sleeping."""
    repository = OrdersRepository(dynamodb or boto3.client("dynamodb"), aws["OrdersTable"])
    letters = DeadLetterQueue(sqs or boto3.client("sqs"), aws["StreamDlqUrl"],
                              backoff=Backoff(max_attempts=2, sleep=no_sleep))
    return Job(OrderProcessor(repository, backoff=backoff or Backoff(max_attempts=4, sleep=no_sleep)), letters)


@pytest.fixture
def stream(aws: Any) -> StreamReader:
    return StreamReader(aws["OrdersStreamArn"])


@pytest.fixture
def invoke(chalice_client: Any) -> Callable[[list[dict[str, Any]]], Any]:
    def run(records: list[dict[str, Any]]) -> Any:
        return chalice_client.lambda_.invoke("process_orders", stream_event(*records)).payload
    return run


def test_lifecycle_pending_then_processed_with_an_exact_total(chalice_client, aws, stream, invoke):
    # GIVEN an order accepted by the API: PENDING, no total yet
    order = post_order(chalice_client)
    assert chalice_client.http.get(f"/orders/{order['id']}").json_body["status"] == "PENDING"
    # WHEN the orders stream delivers its INSERT to the job
    records = stream.read()
    assert [r["eventName"] for r in records] == ["INSERT"]
    assert invoke(records) == {"batchItemFailures": []}
    # THEN the order is PROCESSED with 3 × 19.99 + 1 × 0.10 = 60.07 exactly
    response = chalice_client.http.get(f"/orders/{order['id']}")
    assert response.status_code == 200
    done = response.json_body
    assert done["status"] == "PROCESSED" and done["processed_at"] >= done["created_at"]
    assert '"total":60.07' in response.body.decode()
    assert stored(aws, order["id"])["total"] == Decimal("60.07")
    # AND it is listed under PROCESSED, no longer under PENDING
    assert [o["id"] for o in chalice_client.http.get("/orders?status=PROCESSED").json_body["items"]] == [order["id"]]
    assert chalice_client.http.get("/orders?status=PENDING").json_body["items"] == []
    assert dead_letters(aws) == []


def test_point_one_plus_point_two_totals_exactly_point_three(chalice_client, aws, stream, invoke):
    order = post_order(chalice_client, {"name": "n", "items": [{"sku": "A", "quantity": 1, "unit_price": 0.1},
                                                              {"sku": "B", "quantity": 1, "unit_price": 0.2}]})
    invoke(stream.read())
    assert '"total":0.3' in chalice_client.http.get(f"/orders/{order['id']}").body.decode()


def test_an_order_without_items_totals_zero(chalice_client, aws, stream, invoke):
    order = post_order(chalice_client, {"name": "nothing"})
    invoke(stream.read())
    assert stored(aws, order["id"])["total"] == 0 and stored(aws, order["id"])["status"] == "PROCESSED"


def test_a_batch_delivered_twice_changes_nothing_the_second_time(chalice_client, aws, stream):
    # GIVEN three orders processed once
    ids = [post_order(chalice_client, {**ORDER, "name": f"o{n}"})["id"] for n in range(3)]
    records = stream.read()
    job = processor(aws)
    job.handle(records)
    assert job.last.details["processed"] == 3 and job.last.applied == 3 and job.calls == 3
    after_first = table(aws)
    # WHEN Lambda delivers the very same batch again
    again = processor(aws)
    assert again.handle(records) == {"batchItemFailures": []}
    # THEN no order changed (processed_at included), nothing was dead-lettered
    assert table(aws) == after_first
    assert again.last.skipped == 3 and again.last.applied == 0 and again.calls == 3
    assert {after_first[i]["status"] for i in ids} == {"PROCESSED"}
    assert dead_letters(aws) == []


def test_our_own_updates_on_the_stream_are_ignored(chalice_client, aws, stream):
    # GIVEN an order processed by the job, whose update appears on the stream as a MODIFY
    post_order(chalice_client)
    processor(aws).handle(stream.read())
    snapshot = table(aws)
    modifies = stream.read()
    assert [r["eventName"] for r in modifies] == ["MODIFY"]
    # WHEN that MODIFY reaches the job
    job = processor(aws)
    job.handle(modifies)
    # THEN it makes no call and changes nothing (no loop)
    assert job.calls == 0 and job.last.skipped == 1 and table(aws) == snapshot
    assert stream.read() == []


@pytest.mark.parametrize(
    ("items", "reason"),
    [
        ({"L": [{"M": {"sku": {"S": "A"}, "quantity": {"S": "abc"}, "unit_price": {"N": "1"}}}]},
         "items[0].quantity: must be an integer >= 1, got string"),
        ({"L": [{"M": {"sku": {"S": "A"}, "quantity": {"N": "1"}, "unit_price": {"N": "-3.5"}}}]},
         "items[0].unit_price: must be a number >= 0, got -3.5"),
        ({"L": [{"M": {"quantity": {"N": "1"}, "unit_price": {"N": "1"}}}]}, "items[0].sku: required"),
        ({"S": "three widgets"}, "items: must be an array, got string"),
        ({"L": [{"N": "5"}]}, "items[0]: must be an object, got number"),
    ],
)
def test_a_malformed_order_written_around_the_api_becomes_failed_with_the_reason(aws, stream, invoke, items, reason):
    # GIVEN a PENDING order written straight to the table with malformed items, next to a good one
    put_raw(aws, {"id": {"S": "bad"}, "name": {"S": "n"}, "status": {"S": "PENDING"},
                  "created_at": {"S": "2026-11-22T10:00:00.000Z"}, "items": items})
    put_raw(aws, {"id": {"S": "good"}, "name": {"S": "n"}, "status": {"S": "PENDING"},
                  "created_at": {"S": "2026-11-22T10:00:01.000Z"},
                  "items": {"L": [{"M": {"sku": {"S": "A"}, "quantity": {"N": "2"}, "unit_price": {"N": "1.25"}}}]}})
    # WHEN the job runs on the stream
    invoke(stream.read())
    # THEN the malformed order is FAILED with a reason naming the field, without a total
    bad = stored(aws, "bad")
    assert bad["status"] == "FAILED" and bad["failure_reason"].startswith(reason) and "total" not in bad
    assert bad["processed_at"]
    # AND the good order beside it is processed
    assert stored(aws, "good")["status"] == "PROCESSED" and stored(aws, "good")["total"] == Decimal("2.5")
    assert dead_letters(aws) == []


def test_orders_inserted_in_another_status_are_left_alone(aws, stream):
    put_raw(aws, {"id": {"S": "x"}, "name": {"S": "n"}, "status": {"S": "PROCESSED"},
                  "created_at": {"S": "2026-11-22T10:00:00.000Z"}, "items": {"L": []}, "total": {"N": "7"}})
    job = processor(aws)
    job.handle(stream.read())
    assert job.calls == 0 and job.last.skipped == 1
    assert stored(aws, "x")["total"] == 7 and "processed_at" not in stored(aws, "x")


def test_an_order_deleted_before_the_job_runs_is_not_recreated(chalice_client, aws, stream):
    order = post_order(chalice_client)
    records = stream.read()
    boto3.client("dynamodb").delete_item(TableName=aws["OrdersTable"], Key={"id": {"S": order["id"]}})
    job = processor(aws)
    job.handle(records)
    assert job.last.skipped == 1 and table(aws) == {} and dead_letters(aws) == []


def test_throttling_is_retried_with_backoff_and_the_order_is_processed(chalice_client, aws, stream):
    # GIVEN DynamoDB throttles the first two updates
    order = post_order(chalice_client)
    faulty = Faulty(boto3.client("dynamodb"), "update_item", "ProvisionedThroughputExceededException", times=2)
    slept: list[float] = []
    job = processor(aws, dynamodb=faulty, backoff=Backoff(max_attempts=4, sleep=slept.append))
    # WHEN the job runs
    job.handle(stream.read())
    # THEN it retried after backing off twice (growing caps), and the order is processed; nothing dead-lettered
    assert faulty.faults == 2 and job.calls == 3 and len(slept) == 2 and job.last.retries == 2
    assert 0 <= slept[0] <= 0.05 and 0 <= slept[1] <= 0.1
    assert stored(aws, order["id"])["status"] == "PROCESSED" and dead_letters(aws) == []


def test_an_update_that_keeps_failing_is_dead_lettered_and_the_rest_of_the_batch_goes_on(chalice_client, aws, stream):
    # GIVEN two orders, and a table that refuses every update of the first one
    first = post_order(chalice_client, {**ORDER, "name": "first"})
    second = post_order(chalice_client, {**ORDER, "name": "second"})
    records = stream.read()
    real = boto3.client("dynamodb")

    def refuse_first(**kwargs: Any) -> Any:
        if kwargs["Key"]["id"]["S"] == first["id"]:
            raise ClientError({"Error": {"Code": "InternalServerError", "Message": "injected"}}, "UpdateItem")
        return real.update_item(**kwargs)

    class Client:
        def __getattr__(self, name: str) -> Any:
            return refuse_first if name == "update_item" else getattr(real, name)

    job = processor(aws, dynamodb=Client())
    # WHEN the job runs
    assert job.handle(records) == {"batchItemFailures": []}
    # THEN the first order's record is in the DLQ, unchanged, with the error and attempts
    (letter,) = dead_letters(aws)
    assert letter["consumer"] == "orders" and letter["attempts"] == 4
    assert letter["reason"] == "UpdateItem failed after 4 attempt(s): InternalServerError"
    assert "InternalServerError" in letter["error"]
    assert letter["record"] == records[0] and letter["failed_at"].endswith("Z")
    assert stored(aws, first["id"])["status"] == "PENDING"
    # AND the second order is processed
    assert stored(aws, second["id"])["status"] == "PROCESSED"


def test_the_dlq_record_replays_through_the_job(chalice_client, aws, stream):
    # GIVEN an order whose processing was dead-lettered during an outage
    order = post_order(chalice_client)
    job = processor(aws, dynamodb=Faulty(boto3.client("dynamodb"), "update_item", "ServiceUnavailable"))
    job.handle(stream.read())
    (letter,) = dead_letters(aws)
    # WHEN the dead letter's record is replayed once the table is back
    processor(aws).handle([letter["record"]])
    # THEN the order is processed exactly as it would have been
    assert stored(aws, order["id"])["total"] == Decimal("60.07")


def test_when_the_dlq_is_down_the_handler_raises_so_lambda_retries_and_nothing_is_lost(chalice_client, aws, stream):
    # GIVEN a failing table for one order and a dead-letter queue that refuses messages
    order = post_order(chalice_client)
    records = stream.read()
    job = processor(aws, dynamodb=Faulty(boto3.client("dynamodb"), "update_item", "InternalServerError"),
                    sqs=Faulty(boto3.client("sqs"), "send_message_batch", "ServiceUnavailable"))
    # WHEN the job runs, THEN it raises (Lambda will deliver the batch again)
    with pytest.raises(DeadLetterQueueUnavailable):
        job.handle(records)
    assert stored(aws, order["id"])["status"] == "PENDING"
    # AND the redelivered batch, once things recover, processes the order
    processor(aws).handle(records)
    assert stored(aws, order["id"])["status"] == "PROCESSED"


def test_a_malformed_stream_record_is_dead_lettered_with_its_reason(aws, invoke):
    garbage = {"eventID": "e-1", "eventName": "INSERT", "eventSource": "aws:dynamodb"}
    assert invoke([garbage]) == {"batchItemFailures": []}
    (letter,) = dead_letters(aws)
    assert letter["consumer"] == "orders" and "malformed stream record" in letter["reason"]
    assert letter["record"] == garbage


def test_the_deployed_handler_uses_the_overridable_clients(chalice_client, aws, stream, invoke, monkeypatch):
    # GIVEN the app's own clients swapped for a throttling one (as the fault-injection suite does),
    # and its retries made instant (tests never sleep)
    monkeypatch.setattr(processing, "Backoff", lambda **kw: Backoff(**kw, sleep=no_sleep))
    order = post_order(chalice_client)
    clients.override("dynamodb", Faulty(boto3.client("dynamodb"), "update_item", "ThrottlingException"))
    # WHEN process_orders runs, THEN the record goes to the DLQ rather than being lost
    invoke(stream.read())
    assert [letter["consumer"] for letter in dead_letters(aws)] == ["orders"]
    assert stored(aws, order["id"])["status"] == "PENDING"


def test_a_full_batch_of_one_hundred_orders_costs_one_update_each(aws, stream):
    dynamodb = boto3.client("dynamodb")
    for n in range(100):
        dynamodb.put_item(TableName=aws["OrdersTable"], Item={
            "id": {"S": f"o-{n:03d}"}, "name": {"S": "n"}, "status": {"S": "PENDING"},
            "created_at": {"S": "2026-11-22T10:00:00.000Z"},
            "items": {"L": [{"M": {"sku": {"S": "A"}, "quantity": {"N": str(n + 1)}, "unit_price": {"N": "0.01"}}}]}})
    records = stream.read()
    assert len(records) == 100
    job = processor(aws)
    job.handle(records)
    assert job.calls == 100 and job.last.details["processed"] == 100
    assert {o["id"]: o["total"] for o in table(aws).values()} == {
        f"o-{n:03d}": Decimal(n + 1) / 100 for n in range(100)}
