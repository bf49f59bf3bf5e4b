"""Property: after the stream is consumed, the target table equals the projection of the source table.

A random history of puts, updates, moves and deletes runs on the moto users table; its real stream
records are delivered to the replication handler in random batch sizes, some batches twice (as Lambda
does after a failed invocation), interleaved with more history.
"""

from __future__ import annotations

from typing import Any

import boto3
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto import mock_aws

from chalicelib import clients
from chalicelib.backoff import Backoff, no_sleep
from chalicelib.batch_writer import BatchWriter
from chalicelib.consumer_runtime import ConsumerRuntime
from chalicelib.dead_letters import DeadLetterQueue
from chalicelib.replication.consumer import ReplicationConsumer
from chalicelib.replication.projection import TARGET_KEY_NAMES, project_user
from chalicelib.stream.images import plain_item, typed_item
from tests.support.resources import deploy_stage
from tests.support.streams import StreamReader

EMAILS = [f"user{n}@example.com" for n in range(6)]
STATES = ["NY", "OH", None]
CITIES = ["Brooklyn", "Staten Island", "Cleveland", None]

put_op = st.tuples(st.just("put"), st.sampled_from(EMAILS), st.sampled_from(STATES), st.sampled_from(CITIES),
                   st.booleans())
update_op = st.tuples(st.just("update"), st.sampled_from(EMAILS), st.sampled_from(STATES),
                      st.sampled_from(CITIES), st.booleans())
delete_op = st.tuples(st.just("delete"), st.sampled_from(EMAILS), st.none(), st.none(), st.none())
consume_op = st.tuples(st.just("consume"), st.lists(st.integers(1, 7), min_size=1, max_size=6),
                       st.lists(st.booleans(), min_size=6, max_size=6), st.none(), st.none())
history = st.lists(st.one_of(put_op, put_op, update_op, update_op, delete_op, consume_op), min_size=1, max_size=40)


def apply(dynamodb: Any, table: str, op: tuple[Any, ...]) -> None:
    kind, email, state, city, active = op
    if kind == "put":
        item = {"email": email, "zipcode": "01234", "active": active}
        item.update({k: v for k, v in (("state", state), ("city", city)) if v is not None})
        dynamodb.put_item(TableName=table, Item=typed_item(item))
    elif kind == "update":
        sets = {"active": active, **{k: v for k, v in (("state", state), ("city", city)) if v is not None}}
        removes = [k for k, v in (("state", state), ("city", city)) if v is None]
        expression = "SET " + ", ".join(f"#{k} = :{k}" for k in sets)
        if removes:
            expression += " REMOVE " + ", ".join(f"#{k}" for k in removes)
        dynamodb.update_item(
            TableName=table, Key=typed_item({"email": email}), UpdateExpression=expression,
            ExpressionAttributeNames={f"#{k}": k for k in [*sets, *removes]},
            ExpressionAttributeValues=typed_item({f":{k}": v for k, v in sets.items()}),
        )
    else:
        dynamodb.delete_item(TableName=table, Key=typed_item({"email": email}))


def deliver(consumer: ConsumerRuntime, records: list[dict[str, Any]], sizes: list[int],
            twice: list[bool]) -> int:
    deliveries, start, index = 0, 0, 0
    while start < len(records):
        size = sizes[index % len(sizes)]
        batch = records[start:start + size]
        consumer.handle(batch)
        deliveries += 1
        if twice[index % len(twice)]:
            consumer.handle(batch)  # Lambda redelivers a whole batch after a failed invocation
            deliveries += 1
        start += size
        index += 1
    return deliveries


def scan(dynamodb: Any, table: str) -> list[dict[str, Any]]:
    pages = dynamodb.get_paginator("scan").paginate(TableName=table, ConsistentRead=True)
    return [plain_item(item) for page in pages for item in page["Items"]]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(history, st.lists(st.integers(1, 7), min_size=1, max_size=6), st.lists(st.booleans(), min_size=6, max_size=6))
def test_target_equals_projection_of_source_after_any_history(ops, final_sizes, final_twice):
    clients.reset()
    with mock_aws():
        stage = deploy_stage()
        dynamodb = boto3.client("dynamodb")
        sqs = boto3.client("sqs")
        consumer = ConsumerRuntime(
            ReplicationConsumer(BatchWriter(dynamodb, stage["UsersByLocationTable"], TARGET_KEY_NAMES,
                                            Backoff(sleep=no_sleep))),
            DeadLetterQueue(sqs, stage["StreamDlqUrl"], backoff=Backoff(sleep=no_sleep)),
        )
        reader = StreamReader(stage["UsersStreamArn"])
        for op in ops:
            if op[0] == "consume":
                deliver(consumer, reader.read(), op[1], op[2])
            else:
                apply(dynamodb, stage["UsersTable"], op)
        deliver(consumer, reader.read(), final_sizes, final_twice)

        expected = [p for p in (project_user(u) for u in scan(dynamodb, stage["UsersTable"])) if p is not None]
        actual = scan(dynamodb, stage["UsersByLocationTable"])
        key = lambda item: (item["state"], item["city_email"])  # noqa: E731
        assert sorted(actual, key=key) == sorted(expected, key=key)
        assert sqs.get_queue_attributes(QueueUrl=stage["StreamDlqUrl"], AttributeNames=["ApproximateNumberOfMessages"])[
            "Attributes"]["ApproximateNumberOfMessages"] == "0"
