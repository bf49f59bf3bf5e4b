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

from tests.support.events import insert, stream_event
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
