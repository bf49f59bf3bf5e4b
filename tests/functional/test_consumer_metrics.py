"""Every consumer invocation emits exactly one EMF document (SPEC "Observability") with exact counts, and logs
JSON lines: through the app's own handlers, on moto, on the answered and the raised path alike."""

from __future__ import annotations

import io
import json
import logging
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import pytest

from chalicelib import clients, components
from chalicelib.consumer_runtime import ConsumerRuntime
from chalicelib.dead_letters import DeadLetterQueueUnavailable
from chalicelib.replication.consumer import ReplicationConsumer
from tests.support.events import insert, sqs_message
from tests.support.faults import FaultyClient, aws_error, raising
from tests.support.queues import drain
from tests.support.resources import StageResources
from tests.unit.test_observability_metrics import assert_valid_emf, values

CREATED = int(time.time()) - 60  # the oldest record, a minute ago (ApproximateCreationDateTime: whole seconds)
LOG_KEYS = {"level", "message", "consumer", "function", "aws_request_id"}


def user(n: int) -> dict[str, Any]:
    return {"email": f"u{n:03d}@example.com", "state": "NY", "city": "Albany", "zipcode": "01234", "active": True}


def malformed(n: int) -> dict[str, Any]:
    """A stream record every stream consumer dead-letters without an AWS call: it has no `dynamodb` object."""
    record = insert(user(n), created_at=CREATED + 1)
    del record["dynamodb"]
    return record


def order_records(aws: StageResources, count: int) -> list[dict[str, Any]]:
    """`count` PENDING orders, stored, and their INSERT records as the orders stream carries them."""
    table = boto3.resource("dynamodb").Table(aws["OrdersTable"])
    records = []
    for n in range(count):
        order = {"id": f"order-{n:03d}", "status": "PENDING", "name": "order",
                 "items": [{"sku": "SKU-1", "quantity": Decimal(2), "unit_price": Decimal("1.25")}]}
        table.put_item(Item=order)
        records.append(insert(order, key_names=("id",), table=aws["OrdersTable"], created_at=CREATED + n))
    return records


def stream_batch(aws: StageResources, consumer: str) -> list[dict[str, Any]]:
    """100 records, the first created at CREATED, whose last 3 are dead-lettered."""
    good = (order_records(aws, 97) if consumer == "orders"
            else [insert(user(n), created_at=CREATED + n) for n in range(97)])
    return good + [malformed(n) for n in range(97, 100)]


def ingest_batch(_: StageResources, __: str) -> list[dict[str, Any]]:
    """100 messages, the last 3 invalid (no device)."""
    return ([sqs_message({"user_id": f"u{n}", "device": "pixel", "location": "here"}) for n in range(97)]
            + [sqs_message({"user_id": f"u{n}", "location": "here"}) for n in range(97, 100)])


HANDLERS: list[tuple[str, str, Callable[[StageResources, str], list[dict[str, Any]]]]] = [
    ("replication", "replicate_users", stream_batch),
    ("fanout", "fanout_users", stream_batch),
    ("orders", "process_orders", stream_batch),
    ("ingest", "ingest_device_metadata", ingest_batch),
]


@pytest.fixture
def team_client(aws: StageResources, tmp_path: Path) -> Iterator[Any]:
    """Chalice's test client over the app, on a stage whose METRICS_NAMESPACE is `team-a`."""
    from chalice.test import Client

    from app import app

    (tmp_path / ".chalice").mkdir()
    (tmp_path / ".chalice" / "config.json").write_text(json.dumps({
        "version": "2.0", "app_name": "stream-pipeline",
        "stages": {"test": {"environment_variables": {**aws.env(), "METRICS_NAMESPACE": "team-a"}}},
    }))
    with Client(app, stage_name="test", project_dir=str(tmp_path)) as client:
        yield client


def split_stdout(out: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(EMF documents, log lines) of what a handler printed; every line must be one JSON object."""
    documents, lines = [], []
    for text in out.splitlines():
        if text.strip():
            parsed = json.loads(text)
            (documents if "_aws" in parsed else lines).append(parsed)
    return documents, lines


@pytest.mark.parametrize(("consumer", "function", "batch"), HANDLERS, ids=[h[0] for h in HANDLERS])
def test_one_invocation_of_100_with_3_dead_letters_emits_one_document_with_exact_counts(
        team_client: Any, aws: StageResources, capsys: pytest.CaptureFixture[str], consumer: str, function: str,
        batch: Callable[[StageResources, str], list[dict[str, Any]]]) -> None:
    # GIVEN a stage whose METRICS_NAMESPACE is set, and a batch of 100 records of which 3 cannot be applied
    records = batch(aws, consumer)
    capsys.readouterr()

    # WHEN the app's handler runs on it once
    before = datetime.now(UTC)
    team_client.lambda_.invoke(function, {"Records": records})  # type: ignore[attr-defined]

    # THEN stdout holds exactly one valid EMF document, in the stage's namespace, with the exact counts
    documents, lines = split_stdout(capsys.readouterr().out)
    (document,) = documents
    assert_valid_emf(document, namespace="team-a")
    assert document["consumer"] == consumer
    counts = values(document)
    assert (counts["RecordsIn"], counts["RecordsApplied"], counts["RecordsDeadLettered"]) == (100, 97, 3)
    assert counts["Retries"] == 0 and counts["AwsCalls"] >= 1
    if consumer == "ingest":
        assert "StreamLagMs" not in counts  # a queue has no stream lag
    else:  # the real clock: at least the oldest record's age when the handler started
        assert counts["StreamLagMs"] >= (before - datetime.fromtimestamp(CREATED, UTC)).total_seconds() * 1000
    # AND every log line is JSON naming level, consumer, function and request; the 3 letters by record id
    assert lines and all(line.keys() >= LOG_KEYS and line["consumer"] == consumer and line["function"] == function
                         for line in lines)
    id_key = "messageId" if consumer == "ingest" else "eventID"
    warned = [line for line in lines if line["level"] == "WARNING"]
    assert sorted(line[id_key] for line in warned) == sorted(record[id_key] for record in records[97:])
    assert len(drain(aws["IngestDlqUrl" if consumer == "ingest" else "StreamDlqUrl"])) == 3


def test_stream_lag_is_the_invocation_time_minus_the_oldest_creation_time(
        aws: StageResources, capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN records created 7 s, 5 s and 2 s before an injected invocation time, in no particular order
    from chalicelib.batch_writer import BatchWriter
    from chalicelib.replication.projection import TARGET_KEY_NAMES

    now = datetime.fromtimestamp(CREATED, UTC) + timedelta(seconds=7, milliseconds=250)
    writer = BatchWriter(clients.client("dynamodb"), aws["UsersByLocationTable"], TARGET_KEY_NAMES)
    runtime = ConsumerRuntime(ReplicationConsumer(writer), components.stream_dead_letters(), clock=lambda: now)
    records = [insert(user(n), created_at=CREATED + offset) for n, offset in enumerate((2, 0, 5))]
    capsys.readouterr()

    # WHEN it handles them
    runtime.handle(records)

    # THEN StreamLagMs is now − the oldest creation time, exactly; the document is stamped with that time
    (document,), _ = split_stdout(capsys.readouterr().out)
    assert values(document)["StreamLagMs"] == 7250
    assert document["_aws"]["Timestamp"] == int(now.timestamp() * 1000)


def test_a_dead_letter_queue_that_refuses_still_emits_the_invocations_metrics(
        aws: StageResources, capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN the dead-letter queue answers AccessDenied, and a batch with 2 good records and 1 malformed one
    sqs = FaultyClient(boto3.client("sqs"), send_message=raising(aws_error("sqs", "SendMessage", "AccessDenied")),
                       send_message_batch=raising(aws_error("sqs", "SendMessageBatch", "AccessDenied")))
    clients.override("sqs", sqs)
    runtime = components.replication_consumer()
    capsys.readouterr()

    # WHEN it handles them, the handler raises (Lambda delivers the batch again) ...
    with pytest.raises(DeadLetterQueueUnavailable):
        runtime.handle([insert(user(1)), insert(user(2)), malformed(3)])

    # ... THEN the invocation still emitted exactly one document: 2 applied, none dead-lettered (not stored)
    documents, lines = split_stdout(capsys.readouterr().out)
    (document,) = documents
    counts = values(document)
    assert (counts["RecordsIn"], counts["RecordsApplied"], counts["RecordsDeadLettered"]) == (3, 2, 0)
    assert counts["AwsCalls"] >= 2  # the write and the refused letter


def test_redrive_reads_an_outcome_without_emitting_metrics(aws: StageResources,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    outcome = components.fanout_consumer().process([insert(user(1), created_at=time.time())])
    assert outcome.applied == 1
    documents, _ = split_stdout(capsys.readouterr().out)
    assert documents == []


def test_metrics_that_cannot_be_written_are_an_error_line_not_a_failed_delivery(
        aws: StageResources, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    # GIVEN a stdout that is gone (a closed stream)
    gone = io.StringIO()
    gone.close()
    monkeypatch.setattr(sys, "stdout", gone)

    # WHEN a batch is handled
    answer = components.replication_consumer().handle([insert(user(1))])

    # THEN it is finished as usual (nothing delivered twice), and the lost metrics are said once, loudly
    assert answer == {"batchItemFailures": []}
    (line,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert line.getMessage().startswith("replication: metrics not emitted: ValueError")
