"""Loud, not lossy: a fault no record caused (access denied, a resource that does not exist) is neither retried
nor split; every record it carried is dead-lettered once as `systemic: <Code>` (ingest: left in its queue),
and the invocation logs exactly one ERROR line. The item's fault still isolates the one record.

Errors are built by botocore's own parser from AWS-shaped answers (`tests.support.faults.aws_error`), and
injected through the app's shared clients; outcomes are read from moto's tables and queues.
"""

from __future__ import annotations

import json
import logging
import math
from typing import Any

import boto3
import pytest

from chalicelib import clients, components
from chalicelib.consumer_runtime import RetryLater
from chalicelib.dead_letters import DeadLetterQueueUnavailable
from tests.support.events import insert, sqs_message
from tests.support.faults import FaultyClient, aws_error, raising
from tests.support.queues import drain
from tests.support.resources import StageResources

SYSTEMIC = [("AccessDeniedException", 400), ("ResourceNotFoundException", 400)]


@pytest.fixture(autouse=True)
def instant_retries(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The components' retries never sleep for real; the waits they would have made are recorded."""
    from functools import partial

    from chalicelib import backoff

    waits: list[float] = []
    monkeypatch.setattr(backoff, "Backoff", partial(backoff.Backoff, sleep=waits.append))
    return waits


@pytest.fixture
def errors(caplog: pytest.LogCaptureFixture) -> Any:
    """The ERROR lines the consumers logged."""
    caplog.set_level(logging.INFO, logger="chalicelib")
    return lambda: [r for r in caplog.records if r.levelno >= logging.ERROR and r.name.startswith("chalicelib")]


def user(n: int) -> dict[str, Any]:
    return {"email": f"u{n:03d}@example.com", "state": "NY", "city": "Albany", "zipcode": "01234", "active": True}


def fault_on(service: str, method: str, error: Exception) -> FaultyClient:
    """The app's `service` client, its `method` always failing with `error`."""
    faulty = FaultyClient(boto3.client(service), **{method: raising(error)})
    clients.override(service, faulty)
    return faulty


def assert_systemic_letters(aws: StageResources, records: list[dict[str, Any]], consumer: str, code: str) -> None:
    letters = drain(aws["StreamDlqUrl"])
    assert sorted(json.dumps(letter["record"], sort_keys=True) for letter in letters) == sorted(
        json.dumps(record, sort_keys=True) for record in records)  # each record once, unchanged
    assert {(letter["consumer"], letter["reason"]) for letter in letters} == {(consumer, f"systemic: {code}")}
    assert all(letter["error"].startswith(f"{code}: ") for letter in letters)


def assert_one_error_line(lines: list[logging.LogRecord], consumer: str, code: str, count: int) -> None:
    (line,) = lines
    message = line.getMessage()
    assert message.startswith(f"{consumer}: systemic fault") and code in message and f"({count} record(s))" in message
    assert getattr(line, "consumer", None) == consumer
    assert "@example.com" not in message  # no record data in the line


# --- replication (BatchWriteItem) and fan-out (PutEvents) --------------------------------------------

@pytest.mark.parametrize(("consumer", "service", "method", "operation", "per_request"), [
    ("replication", "dynamodb", "batch_write_item", "BatchWriteItem", 25),
    ("fanout", "events", "put_events", "PutEvents", 10),
])
@pytest.mark.parametrize(("code", "status"), SYSTEMIC)
def test_a_systemic_fault_costs_one_call_per_request_and_letters_every_record(
        aws, errors, instant_retries, consumer, service, method, operation, per_request, code, status):
    # GIVEN the consumer's write answers AccessDenied / ResourceNotFound, and 100 records
    faulty = fault_on(service, method, aws_error(service, operation, code, status=status))
    records = [insert(user(n)) for n in range(100)]
    runtime = {"replication": components.replication_consumer, "fanout": components.fanout_consumer}[consumer]()
    # WHEN the handler runs on them
    answer = runtime.handle(records)
    # THEN one call per request (no halving, no retry, no wait), every record dead-lettered once ...
    assert faulty.calls[method] == math.ceil(100 / per_request)
    assert instant_retries == []
    assert_systemic_letters(aws, records, consumer, code)
    # ... exactly one ERROR line for the invocation, and the batch is finished (nothing lost: the letters hold it)
    assert_one_error_line(errors(), consumer, code, 100)
    assert answer == {"batchItemFailures": []}


def test_one_item_dynamodb_refuses_among_25_is_the_only_record_dead_lettered(aws, errors):
    # GIVEN 25 records, one of whose target items DynamoDB refuses (ValidationException fails the whole request)
    records = [insert(user(n)) for n in range(25)]
    refused = "Albany#u013@example.com"

    def refuse_item(real: Any, RequestItems: dict[str, list[dict[str, Any]]], **kwargs: Any) -> Any:
        (requests,) = RequestItems.values()
        if any(r["PutRequest"]["Item"]["city_email"]["S"] == refused for r in requests):
            raise aws_error("dynamodb", "BatchWriteItem", "ValidationException", "Item size has exceeded the maximum")
        return real(RequestItems=RequestItems, **kwargs)

    clients.override("dynamodb", FaultyClient(boto3.client("dynamodb"), batch_write_item=refuse_item))
    # WHEN replicated
    components.replication_consumer().handle(records)
    # THEN only that record is dead-lettered (the item's fault, not the system's), its 24 neighbours landed
    (letter,) = drain(aws["StreamDlqUrl"])
    assert letter["record"] == records[13]
    assert letter["reason"] == "BatchWriteItem refused the record: ValidationException"
    items = boto3.client("dynamodb").scan(TableName=aws["UsersByLocationTable"])["Items"]
    assert len(items) == 24 and refused not in {i["city_email"]["S"] for i in items}
    assert errors() == []  # an item's fault is a WARNING about that record, not a systemic ERROR


# --- orders: UpdateItem --------------------------------------------------------------------------------

def pending_order(n: int) -> dict[str, Any]:
    return insert({"id": f"o-{n:03d}", "name": "n", "status": "PENDING", "created_at": "2026-11-22T10:00:00.000Z",
                   "items": []}, key_names=("id",), table="stream-pipeline-test-orders")


@pytest.mark.parametrize(("code", "status"), SYSTEMIC)
def test_orders_stop_at_the_first_systemic_fault_and_letter_the_rest_with_the_same_reason(
        aws, errors, instant_retries, code, status):
    # GIVEN UpdateItem on the orders table fails systemically, and 100 PENDING orders on the stream
    faulty = fault_on("dynamodb", "update_item", aws_error("dynamodb", "UpdateItem", code, status=status))
    records = [pending_order(n) for n in range(100)]
    # WHEN process_orders handles them
    answer = components.order_processor().handle(records)
    # THEN one UpdateItem in all (not one per order, no retry); every order is dead-lettered with that code
    assert faulty.calls["update_item"] == 1 and instant_retries == []
    letters = {letter["record"]["dynamodb"]["Keys"]["id"]["S"]: letter for letter in drain(aws["StreamDlqUrl"])}
    assert sorted(letters) == [f"o-{n:03d}" for n in range(100)]
    assert {letter["reason"] for letter in letters.values()} == {f"systemic: {code}"}
    # the order that met the fault was attempted once; the others never were
    assert letters["o-000"]["attempts"] == 1 and {letters[k]["attempts"] for k in letters if k != "o-000"} == {0}
    assert_one_error_line(errors(), "orders", code, 100)
    assert answer == {"batchItemFailures": []}


def test_an_order_dynamodb_refuses_is_dead_lettered_at_once_and_the_batch_goes_on(aws, errors, instant_retries):
    real = boto3.client("dynamodb")

    def refuse_first(update: Any, **kwargs: Any) -> Any:
        if kwargs["Key"]["id"]["S"] == "o-000":
            raise aws_error("dynamodb", "UpdateItem", "ValidationException", "Number overflow")
        return update(**kwargs)

    clients.override("dynamodb", FaultyClient(real, update_item=refuse_first))
    components.order_processor().handle([pending_order(0), pending_order(1)])
    (letter,) = drain(aws["StreamDlqUrl"])
    assert letter["reason"] == "UpdateItem refused the record: ValidationException" and letter["attempts"] == 1
    assert real.get_item(TableName=aws["OrdersTable"], Key={"id": {"S": "o-001"}}).get("Item") is None  # not ours
    assert instant_retries == [] and errors() == []


# --- the dead-letter queue itself --------------------------------------------------------------------

@pytest.mark.parametrize("consumer", ["replication", "fanout"])
def test_a_dead_letter_queue_refusing_systemically_makes_the_handler_raise_at_once(aws, errors, instant_retries,
                                                                                  consumer):
    # GIVEN a write the system refuses (letters for all 23 records) and a DLQ whose SendMessageBatch is denied
    if consumer == "replication":
        fault_on("dynamodb", "batch_write_item", aws_error("dynamodb", "BatchWriteItem", "AccessDeniedException"))
        runtime = components.replication_consumer
    else:
        fault_on("events", "put_events", aws_error("events", "PutEvents", "AccessDeniedException"))
        runtime = components.fanout_consumer
    denied = aws_error("sqs", "SendMessageBatch", "AccessDenied", status=403, query_error="AccessDenied;Sender")
    sqs = fault_on("sqs", "send_message_batch", denied)
    # WHEN the batch is handled THEN it raises (Lambda delivers the batch again: nothing is lost) ...
    with pytest.raises(DeadLetterQueueUnavailable, match="23 dead letter.*AccessDenied"):
        runtime().handle([insert(user(n)) for n in range(23)])
    # ... with no retry loop: one SendMessageBatch per request of ≤ 10, no wait
    assert sqs.calls["send_message_batch"] == 3 and instant_retries == []
    # ... and one ERROR line naming both systemic faults
    (line,) = errors()
    assert "AccessDeniedException on" in line.getMessage() and "AccessDenied on SendMessageBatch" in line.getMessage()


def test_a_dead_letter_queue_whose_size_cannot_be_read_makes_the_handler_raise_at_once(aws, instant_retries):
    fault_on("dynamodb", "batch_write_item", aws_error("dynamodb", "BatchWriteItem", "ResourceNotFoundException"))
    sqs = fault_on("sqs", "get_queue_attributes", aws_error(
        "sqs", "GetQueueAttributes", "AccessDenied", status=403, query_error="AccessDenied;Sender"))
    with pytest.raises(DeadLetterQueueUnavailable):
        components.replication_consumer().handle([insert(user(1))])
    assert sqs.calls["get_queue_attributes"] == 1 and instant_retries == []


# --- ingest: systemic faults leave the messages in their queue -----------------------------------------

def received(aws: StageResources, bodies: list[str]) -> tuple[str, list[dict[str, Any]]]:
    """Send `bodies` to the real (moto) ingest queue and receive them as Lambda records."""
    sqs = boto3.client("sqs")
    url = sqs.get_queue_url(QueueName=aws.env()["INGEST_QUEUE"])["QueueUrl"]
    sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": b} for i, b in enumerate(bodies)])
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0,
                                   MessageSystemAttributeNames=["All"])["Messages"]
    assert len(messages) == len(bodies)
    return url, [sqs_message(m["Body"], message_id=m["MessageId"], receipt_handle=m["ReceiptHandle"],
                             queue_arn=aws["IngestQueueArn"]) for m in messages]


@pytest.mark.parametrize(("code", "status"), SYSTEMIC)
def test_ingest_under_a_systemic_fault_leaves_every_valid_message_in_its_queue(aws, errors, instant_retries,
                                                                                code, status):
    # GIVEN three valid messages and an invalid one, received from the ingest queue; writes are refused systemically
    valid = [json.dumps({"user_id": f"u-{n}", "device": "d", "location": "l"}) for n in range(3)]
    url, records = received(aws, [*valid, "not json"])
    faulty = fault_on("dynamodb", "batch_write_item", aws_error("dynamodb", "BatchWriteItem", code, status=status))
    # WHEN ingest_device_metadata handles them
    with pytest.raises(RetryLater, match=f"3 of 4 message.*systemic: {code}") as raised:
        components.ingest_consumer().handle(records)
    # THEN one write, no retry; the valid messages are still in the queue (they come back and, past
    # maxReceiveCount, move to the DLQ by the redrive policy), never dead-lettered one by one
    assert faulty.calls["batch_write_item"] == 1 and instant_retries == [] and raised.value.remaining == 3
    left = boto3.client("sqs").receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    assert sorted(m["Body"] for m in left) == sorted(valid)
    # ... while the invalid one is dead-lettered with its reason (and deleted from the queue)
    assert [(letter["reason"], letter["record"]["body"]) for letter in drain(aws["IngestDlqUrl"])] == [
        ("body: must be a JSON object, got invalid JSON", "not json")]
    assert_one_error_line(errors(), "ingest", code, 3)


def test_the_deployed_handler_reports_a_systemic_fault_through_the_same_path(chalice_client, aws, capsys):
    # GIVEN the app as Lambda invokes it, and an event bus that does not exist (a bad deploy)
    records = [insert(user(n)) for n in range(3)]
    missing = aws_error("events", "PutEvents", "ResourceNotFoundException", "Event bus stream-pipeline-test not found.")
    clients.override("events", FaultyClient(boto3.client("events"), put_events=raising(missing)))
    # WHEN fanout_users runs
    result = chalice_client.lambda_.invoke("fanout_users", {"Records": records})
    # THEN the records are in the DLQ as systemic letters, and the invocation logged one ERROR line
    assert result.payload == {"batchItemFailures": []}
    assert_systemic_letters(aws, records, "fanout", "ResourceNotFoundException")
    # the handler's lines are JSON on stdout (Lambda's log stream), not the root logger's: read them there
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"level"')]
    (error,) = [line for line in lines if line["level"] == "ERROR"]
    assert error["consumer"] == "fanout" and error["function"] == "fanout_users"
    assert error["message"].startswith("fanout: systemic fault") and "ResourceNotFoundException" in error["message"]
    assert "(3 record(s))" in error["message"] and "@example.com" not in error["message"]

