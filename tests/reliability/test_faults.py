"""Injected faults at a configurable rate (30 % by default) through one injector for every adapter, the app's
handlers fed as Lambda feeds them; then the faults stop, `ops redrive` and `ops verify` run.

Stream: a history of inserts, moves and deletes on the users table; replication and fan-out consume it
through the local stack's stream poller with their real mapping settings (retries, bisect, max retry
attempts, on-failure destination). Every record ends applied or published, or in the DLQ with its reason;
after redrive, verify finds no drift and every fan-out event is on the subscriber queue (duplicates, which
at-least-once allows, counted apart). Shards are read in order.

Ingest: device messages (a few invalid) through a Lambda-like queue mapping: every valid message stored,
every invalid one dead-lettered with its reason, nothing else left anywhere after redrive.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from typing import Any

import boto3

from chalicelib.stream.images import plain_item
from tests.reliability import figures
from tests.reliability.histories import write_history
from tests.reliability.lambda_like import (
    Clock,
    Handler,
    QueueDeliverer,
    drain_streams,
    letter_of,
    peek,
    read_all,
    stream_poller,
)
from tests.support.fault_injector import FaultInjector, FaultPlan
from tests.support.queues import drain
from tests.support.resources import StageResources
from tests.support.streams import StreamReader


def test_stream_records_under_faults(aws: StageResources, no_backoff_sleep: list[float], run_ops: Any) -> None:
    rng = random.Random(1717)
    # GIVEN a history of changes on the users stream
    write_history(aws["UsersTable"], figures.STREAM_RECORDS, rng)
    history = StreamReader(aws["UsersStreamArn"]).read()
    assert len(history) >= figures.STREAM_RECORDS * 0.99  # a put that changes nothing writes no record
    # AND faults on every adapter's calls, and a period in which everything is AccessDenied (a bad deploy)
    calls = figures.STREAM_RECORDS // 10
    injector = FaultInjector(FaultPlan(rate=figures.FAULT_RATE, systemic_calls=(calls, calls + calls // 5),
                                       kinds=("throttling", "connection", "unprocessed", "entry_failures",
                                              "dlq_refuses", "systemic"),
                                       dlq_urls=(aws["StreamDlqUrl"], aws["IngestDlqUrl"]))).install()

    # WHEN replication and fan-out consume the stream as Lambda would
    clock = Clock()
    handlers = [Handler("replicate_users"), Handler("fanout_users")]
    pollers = [stream_poller(handler, aws["UsersStreamArn"], clock) for handler in handlers]
    drain_streams(pollers, clock)
    injector.stop()
    letters = [letter_of(body) or {"raw": body} for _, body in peek(aws["StreamDlqUrl"])]
    lambda_failures = [letter for letter in letters if "DDBStreamBatchInfo" in letter]
    letters = [letter for letter in letters if "DDBStreamBatchInfo" not in letter]

    # THEN every letter says why; shards were read in order (each record first seen after the one before it)
    assert all(letter["reason"] for letter in letters)
    sequence = [int(r["dynamodb"]["SequenceNumber"]) for r in history]
    for handler in handlers:
        first_seen = list(dict.fromkeys(int(s) for batch in handler.batches for s in batch))
        assert first_seen == sequence, f"{handler.name} read the shard out of order"

    # WHEN the faults are fixed and the operator redrives, THEN nothing is left and verify finds no drift
    assert run_ops("redrive", "--queue", "stream") == 0
    assert drain(aws["StreamDlqUrl"]) == []
    assert run_ops("verify") == 0

    # AND every fan-out event was published (duplicates counted apart)
    published = Counter(event["detail"]["eventID"] for event in read_all(aws["SubscriberQueueUrl"]))
    unpublished = [r["eventID"] for r in history if r["eventID"] not in published]
    assert unpublished == []
    duplicates = sum(published.values()) - len(published)

    reasons = Counter(_reason_kind(letter["reason"]) for letter in letters)
    for handler in handlers:
        consumer = "replication" if handler.name == "replicate_users" else "fanout"
        mine = [letter for letter in letters if letter["consumer"] == consumer]
        figures.record("Stream records under injected faults", consumer=consumer, **{
            "records in": len(history),
            "applied": len(history) if consumer == "replication" else len(published),
            "dead-lettered (then redriven)": len(mine),
            "lost": 0,
            "duplicates": duplicates if consumer == "fanout" else "-",
            "invocations": handler.invocations,
            "failed invocations": sum(handler.errors.values()),
            "Lambda gave up (failure records)": sum(
                1 for f in lambda_failures if handler.name in f["requestContext"]["functionArn"]),
        })
    figures.record("Faults injected", run=f"{len(history):,} stream records at {figures.FAULT_RATE:.0%}",
                   **dict(sorted(injector.injected.items())), **{"calls seen": sum(injector.calls.values())},
                   **{"letters by reason": ", ".join(f"{kind} {n:,}" for kind, n in sorted(reasons.items()))})


def _reason_kind(reason: str) -> str:
    if reason.startswith("systemic:"):
        return reason
    if "failed after" in reason:
        return "retries exhausted"
    return "refused"


def device_body(n: int, rng: random.Random) -> str:
    if rng.random() < 0.05:  # an invalid message now and then: dead-lettered at once, never retried
        return rng.choice(['{"user_id": "u"}', "not json", '{"user_id": 1, "device": "d", "location": "l"}',
                           json.dumps({"user_id": "u", "device": "", "location": "Lisbon"})])
    return json.dumps({"user_id": f"user-{n % 997}", "device": f"device-{n % 13}", "location": f"City {n % 20}"})


def test_messages_under_faults(aws: StageResources, no_backoff_sleep: list[float], run_ops: Any) -> None:
    rng = random.Random(4242)
    sqs = boto3.client("sqs")
    queue_url = sqs.get_queue_url(QueueName=aws["IngestQueueName"])["QueueUrl"]
    # GIVEN device messages on the ingest queue, a few of them invalid
    bodies: dict[str, str] = {}
    for start in range(0, figures.MESSAGES, 10):
        entries = [{"Id": str(n), "MessageBody": device_body(n, rng)}
                   for n in range(start, min(start + 10, figures.MESSAGES))]
        answer = sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)
        by_id = {entry["Id"]: entry["MessageBody"] for entry in entries}
        bodies.update((sent["MessageId"], by_id[sent["Id"]]) for sent in answer["Successful"])
    assert len(bodies) == figures.MESSAGES
    calls = figures.MESSAGES // 40
    injector = FaultInjector(FaultPlan(rate=figures.FAULT_RATE, systemic_calls=(calls, calls + calls // 5),
                                       kinds=("throttling", "connection", "unprocessed", "dlq_refuses", "systemic"),
                                       dlq_urls=(aws["StreamDlqUrl"], aws["IngestDlqUrl"]), seed=99)).install()

    # WHEN the ingest function consumes the queue as Lambda would
    handler = Handler("ingest_device_metadata")
    deliveries = QueueDeliverer(handler, queue_url).drain()
    injector.stop()
    before_redrive = peek(aws["IngestDlqUrl"])

    # THEN after a redrive, every valid message is stored and every invalid one is in the ingest DLQ: a letter
    # with its reason, or (past maxReceiveCount while the system was denied) the raw message itself
    run_ops("redrive", "--queue", "ingest")  # exits 1: the invalid letters stay, as they must
    stored = {plain_item(item)["message_id"] for page in boto3.client("dynamodb").get_paginator("scan").paginate(
        TableName=aws["DeviceMetadataTable"], ConsistentRead=True) for item in page["Items"]}
    left: dict[str, dict[str, Any] | None] = {}
    for message_id, body in peek(aws["IngestDlqUrl"]):
        letter = letter_of(body)
        left[letter["record"]["messageId"] if letter else message_id] = letter
    invalid = {identifier for identifier, body in bodies.items() if not _valid(body)}
    assert all(letter["reason"] for letter in left.values() if letter is not None)
    assert set(left) == invalid
    assert stored == set(bodies) - invalid
    assert read_all(queue_url) == []

    raw = sum(1 for _, body in before_redrive if letter_of(body) is None)  # moved by the queue's maxReceiveCount
    figures.record("Messages under injected faults", consumer="ingest", **{
        "messages in": len(bodies), "stored": len(stored), "invalid (dead-lettered)": len(invalid),
        "invalid kept raw (past maxReceiveCount)": sum(letter is None for letter in left.values()),
        "in the DLQ before redrive": len(before_redrive), "past maxReceiveCount": raw, "lost": 0,
        "deliveries": deliveries, "failed invocations": sum(handler.errors.values())})
    figures.record("Faults injected", run=f"{len(bodies):,} messages at {figures.FAULT_RATE:.0%}",
                   **dict(sorted(injector.injected.items())), **{"calls seen": sum(injector.calls.values())})


def _valid(body: str) -> bool:
    try:
        value = json.loads(body)
    except ValueError:
        return False
    return isinstance(value, dict) and all(isinstance(value.get(f), str) and value[f].strip()
                                           for f in ("user_id", "device", "location"))
