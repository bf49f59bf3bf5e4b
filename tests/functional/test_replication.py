"""Replication consumer against moto: target state, call counts, retries, dead letters."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from chalicelib import clients
from chalicelib.backoff import Backoff
from chalicelib.batch_writer import BatchWriter
from chalicelib.consumer_runtime import ConsumerRuntime
from chalicelib.dead_letters import DeadLetterQueue, DeadLetterQueueUnavailable
from chalicelib.replication.consumer import ReplicationConsumer
from chalicelib.replication.projection import TARGET_KEY_NAMES
from chalicelib.stream.images import plain_item
from tests.support.events import insert, modify, remove, stream_event, stream_record
from tests.support.faults import CallCounter, FaultyClient, client_error, unprocess_first_attempts


def user(n: int | str, city: str = "Brooklyn", state: str = "NY", **extra: Any) -> dict[str, Any]:
    return {"email": f"u{n}@x.io", "state": state, "city": city, "zipcode": "01234", "active": True, **extra}


def target_items(aws: Any) -> dict[tuple[str, str], dict[str, Any]]:
    pages = boto3.client("dynamodb").get_paginator("scan").paginate(TableName=aws["UsersByLocationTable"])
    items = [plain_item(i) for page in pages for i in page["Items"]]
    return {(i["state"], i["city_email"]): i for i in items}


def dead_letters(aws: Any) -> list[dict[str, Any]]:
    sqs = boto3.client("sqs")
    bodies = []
    while True:
        answer = sqs.receive_message(QueueUrl=aws["StreamDlqUrl"], MaxNumberOfMessages=10)
        messages = answer.get("Messages", [])
        if not messages:
            return bodies
        for message in messages:
            bodies.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=aws["StreamDlqUrl"], ReceiptHandle=message["ReceiptHandle"])


def consumer(aws: Any, dynamodb: Any = None, sqs: Any = None, sleeps: list[float] | None = None,
             attempts: int = 8) -> tuple[ConsumerRuntime, BatchWriter]:
    recorded = sleeps if sleeps is not None else []
    backoff = Backoff(max_attempts=attempts, sleep=recorded.append, rand=lambda: 1.0)
    writer = BatchWriter(dynamodb or boto3.client("dynamodb"), aws["UsersByLocationTable"], TARGET_KEY_NAMES,
                         backoff)
    dlq = DeadLetterQueue(sqs or boto3.client("sqs"), aws["StreamDlqUrl"],
                          backoff=Backoff(max_attempts=3, sleep=recorded.append))
    return ConsumerRuntime(ReplicationConsumer(writer), dlq), writer


def test_inserts_moves_and_deletes_keep_the_target_in_step(aws):
    ada, bob, cy = user("ada"), user("bob"), user("cy", city="Albany")
    moved = {**ada, "city": "Queens"}
    records = [insert(ada), insert(bob), insert(cy), modify(ada, moved), remove(bob)]
    replication, _ = consumer(aws)
    assert replication.handle(records) == {"batchItemFailures": []}
    assert set(target_items(aws)) == {("NY", "Queens#uada@x.io"), ("NY", "Albany#ucy@x.io")}
    assert target_items(aws)[("NY", "Queens#uada@x.io")] == {
        "state": "NY", "city": "Queens", "email": "uada@x.io", "active": True, "city_email": "Queens#uada@x.io"}
    assert dead_letters(aws) == []


def test_two_users_in_one_city_are_two_items(aws):
    replication, _ = consumer(aws)
    replication.handle([insert(user(1)), insert(user(2))])
    assert len(target_items(aws)) == 2


def test_a_batch_delivered_twice_gives_the_same_result(aws):
    a, b = user(1), user(2)
    batch = [insert(a), insert(b), modify(a, {**a, "state": "NJ"}), remove(b)]
    replication, _ = consumer(aws)
    replication.handle(batch)
    first = target_items(aws)
    replication.handle(batch)
    assert target_items(aws) == first == {("NJ", "Brooklyn#u1@x.io"): {
        "state": "NJ", "city": "Brooklyn", "email": "u1@x.io", "active": True, "city_email": "Brooklyn#u1@x.io"}}


def test_a_thousand_distinct_keys_take_at_most_forty_batch_writes(aws):
    dynamodb = boto3.client("dynamodb")
    counter = CallCounter(dynamodb)
    replication, writer = consumer(aws, dynamodb)
    replication.handle([insert(user(n)) for n in range(1000)])
    assert counter["BatchWriteItem"] == writer.calls == 40
    assert all(len(params["RequestItems"][aws["UsersByLocationTable"]]) <= 25 for _, params in counter.requests)
    assert len(target_items(aws)) == 1000


def test_one_key_changed_four_times_in_a_batch_is_written_once(aws):
    dynamodb = boto3.client("dynamodb")
    counter = CallCounter(dynamodb)
    replication, _ = consumer(aws, dynamodb)
    v = [user(1, active=bool(n % 2), zipcode=f"0000{n}") for n in range(4)]
    replication.handle([insert(v[0]), modify(v[0], v[1]), modify(v[1], v[2]), modify(v[2], v[3])])
    [(_, params)] = counter.requests
    assert len(params["RequestItems"][aws["UsersByLocationTable"]]) == 1
    assert target_items(aws)[("NY", "Brooklyn#u1@x.io")]["active"] is True  # the last version, v[3]


def test_unprocessed_items_are_retried_with_backoff_until_written(aws):
    sleeps: list[float] = []
    dynamodb = FaultyClient(boto3.client("dynamodb"), batch_write_item=unprocess_first_attempts(3))
    replication, writer = consumer(aws, dynamodb, sleeps=sleeps)
    replication.handle([insert(user(n)) for n in range(30)])
    assert len(target_items(aws)) == 30 and dead_letters(aws) == []
    # attempt 1: 25 + 5 unprocessed; attempt 2: 25 unprocessed, 5 written; attempt 3: 25 written
    assert writer.calls == 5
    assert sleeps == [0.05, 0.1]  # exponential (jitter pinned to its maximum)


def test_writes_that_never_land_are_dead_lettered_with_the_original_record(aws):
    dynamodb = FaultyClient(boto3.client("dynamodb"), batch_write_item=unprocess_first_attempts(
        100, keep=lambda r: "u2@x.io" in json.dumps(r)))
    replication, _ = consumer(aws, dynamodb, attempts=4)
    records = [insert(user(n)) for n in range(4)]
    replication.handle(records)
    assert ("NY", "Brooklyn#u2@x.io") not in target_items(aws) and len(target_items(aws)) == 3
    [letter] = dead_letters(aws)
    assert letter["consumer"] == "replication" and letter["attempts"] == 4
    assert letter["reason"] == "BatchWriteItem failed after 4 attempt(s): UnprocessedItems"
    assert letter["record"] == records[2]
    assert letter["failed_at"].endswith("Z")


def test_throttled_calls_are_retried_and_a_non_retryable_error_dead_letters_at_once(aws):
    state = {"throttles": 2}

    def throttle_then_write(real: Any, **kw: Any) -> Any:
        if state["throttles"]:
            state["throttles"] -= 1
            raise client_error("ProvisionedThroughputExceededException")
        return real(**kw)

    replication, writer = consumer(aws, FaultyClient(boto3.client("dynamodb"), batch_write_item=throttle_then_write))
    replication.handle([insert(user(1))])
    assert len(target_items(aws)) == 1 and writer.calls == 3

    def refuse(real: Any, **kw: Any) -> Any:
        raise client_error("ValidationException", "Item size has exceeded the maximum allowed size")

    replication, writer = consumer(aws, FaultyClient(boto3.client("dynamodb"), batch_write_item=refuse))
    replication.handle([insert(user(2))])
    [letter] = dead_letters(aws)
    assert writer.calls == 1 and "ValidationException" in letter["error"]


def test_records_lacking_their_image_are_dead_lettered_and_the_rest_applied(aws):
    no_old = stream_record("REMOVE", {"email": "u9@x.io"})
    replication, _ = consumer(aws)
    replication.handle([insert(user(1)), no_old, insert(user(2))])
    assert len(target_items(aws)) == 2
    [letter] = dead_letters(aws)
    assert letter["reason"].startswith("REMOVE record has no OldImage") and letter["record"] == no_old


def test_when_the_dead_letter_queue_is_unavailable_the_handler_raises(aws):
    def down(real: Any, **kw: Any) -> Any:
        raise client_error("AWS.SimpleQueueService.NonExistentQueue", "queue does not exist")

    replication, _ = consumer(aws, sqs=FaultyClient(boto3.client("sqs"), send_message_batch=down))
    with pytest.raises(DeadLetterQueueUnavailable):
        replication.handle([insert(user(1)), stream_record("REMOVE", {"email": "u9@x.io"})])
    assert len(target_items(aws)) == 1  # the good record was applied; Lambda retries the batch (idempotent)


def test_the_app_handler_accepts_records_without_creation_time_or_source_arn(chalice_client, aws):
    raw = insert(user(1))
    del raw["dynamodb"]["ApproximateCreationDateTime"], raw["eventSourceARN"]
    answer = chalice_client.lambda_.invoke("replicate_users", stream_event(raw))
    assert answer.payload == {"batchItemFailures": []}
    assert len(target_items(aws)) == 1


def test_the_app_handler_uses_the_shared_clients_so_calls_can_be_counted(chalice_client, aws):
    dynamodb = boto3.client("dynamodb")
    counter = CallCounter(dynamodb)
    clients.override("dynamodb", dynamodb)
    chalice_client.lambda_.invoke("replicate_users", stream_event(*[insert(user(n)) for n in range(60)]))
    assert counter["BatchWriteItem"] == 3
