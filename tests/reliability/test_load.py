"""Load through the local stack (`make soak` only: minutes of work): 10,000 users through the API by 4 clients
plus 10,000 device messages → the target equals the projection (`ops verify`, exit 0), every event is in the
subscriber queue, every message stored, nothing in either dead-letter queue."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from local_stack.loadgen import StackProcess, emulator_client, post_users, queue_depth, stack_outputs
from tests.reliability import figures

ROOT = Path(__file__).resolve().parents[2]

USERS = int(os.environ.get("RELIABILITY_LOAD_USERS", "10000"))
MESSAGES = USERS
CLIENTS = 4

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(not figures.SOAK, reason="load through the local stack: make soak")]


@pytest.fixture(scope="module")
def stack() -> Iterator[StackProcess]:
    process = StackProcess(extra_args=("--poll-interval", "0.05"))
    try:
        process.wait_ready()
        yield process
    finally:
        process.stop()


def until(probe: object, timeout: float, what: str) -> float:
    started = time.monotonic()
    while not probe():  # type: ignore[operator]
        if time.monotonic() - started > timeout:
            raise AssertionError(f"{what}: not within {timeout:g} s")
        time.sleep(1.0)
    return time.monotonic() - started


def test_users_and_messages_through_the_local_stack(stack: StackProcess, tmp_path: Path) -> None:
    outputs = stack_outputs(stack.emulator)
    sqs, dynamodb = emulator_client(stack.emulator, "sqs"), emulator_client(stack.emulator, "dynamodb")
    ingest = sqs.get_queue_url(QueueName=outputs["IngestQueueName"])["QueueUrl"]
    subscriber = outputs["SubscriberQueueUrl"]
    run = uuid.uuid4().hex[:8]

    # WHEN 4 clients POST 10,000 users while 10,000 device messages arrive on the ingest queue
    def send(start: int) -> None:
        entries = [{"Id": str(n), "MessageBody": json.dumps({"user_id": f"load-{run}-{start + n}", "device": "pixel",
                                                               "location": f"City {n}"})} for n in range(10)]
        assert not sqs.send_message_batch(QueueUrl=ingest, Entries=entries).get("Failed")

    started = time.monotonic()
    with ThreadPoolExecutor(2) as pool:
        messages = pool.submit(lambda: list(map(send, range(0, MESSAGES, 10))))
        throughput = post_users(stack.api, run, 0, USERS, clients=CLIENTS)
        messages.result()

    # THEN every event reaches the subscriber queue and every message is stored
    def count(table: str) -> int:
        pages = dynamodb.get_paginator("scan").paginate(TableName=table, Select="COUNT")
        return sum(page["Count"] for page in pages)

    until(lambda: queue_depth(sqs, subscriber) >= USERS, 1200, "fan-out events")
    until(lambda: count(outputs["DeviceMetadataTable"]) >= MESSAGES and queue_depth(sqs, ingest) == 0, 600,
          "device messages stored")
    until(lambda: count(outputs["UsersByLocationTable"]) >= USERS, 600, "users replicated")
    seconds = time.monotonic() - started
    events = queue_depth(sqs, subscriber)
    stored = count(outputs["DeviceMetadataTable"])
    dead = {name: queue_depth(sqs, outputs[name]) for name in ("StreamDlqUrl", "IngestDlqUrl")}
    assert events >= USERS and stored == MESSAGES and dead == {"StreamDlqUrl": 0, "IngestDlqUrl": 0}

    # AND ops verify finds no drift
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ENDPOINT_URL=stack.emulator, AWS_ACCESS_KEY_ID="local", AWS_SECRET_ACCESS_KEY="local",
               AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull)
    verify = subprocess.run([sys.executable, "-m", "ops", "verify", "--stage", "dev", "--no-progress",
                             "--checkpoint", str(tmp_path / "verify.json")],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    figures.record("Load through the local stack", **{
        "users (API, 4 clients)": throughput.users, "users/s": round(throughput.per_second, 1),
        "device messages": MESSAGES, "events on subscriber queue": events, "duplicates": events - USERS,
        "messages stored": stored,
        "stream DLQ": dead["StreamDlqUrl"], "ingest DLQ": dead["IngestDlqUrl"], "drift (ops verify)": 0,
        "seconds until caught up": round(seconds)})
