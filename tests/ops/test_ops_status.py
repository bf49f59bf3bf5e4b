"""status: item counts, queue depths, and (--peek) dead letters by consumer and reason, left in place."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest

from chalicelib.dead_letters import DeadLetter, DeadLetterQueue
from tests.ops.ops_support import RunOps, put_items, user
from tests.support.events import insert, sqs_message
from tests.support.resources import StageResources


def table_rows(out: str) -> list[list[str]]:
    return [[cell.strip() for cell in line.split("│")[1:-1]] for line in out.splitlines() if line.count("│") >= 3]


@pytest.fixture
def busy_stage(aws: StageResources) -> None:
    """12 users, 3 ingest messages waiting, 3 stream dead letters (2 reasons), 1 ingest letter, 1 raw message."""
    put_items(aws["UsersTable"], [user(n) for n in range(12)])
    sqs = boto3.client("sqs")
    ingest_url = sqs.get_queue_url(QueueName=aws["IngestQueueName"])["QueueUrl"]
    for n in range(3):
        sqs.send_message(QueueUrl=ingest_url, MessageBody=json.dumps({"user_id": f"u{n}"}))
    DeadLetterQueue(sqs, aws["StreamDlqUrl"]).send([
        DeadLetter("replication", "target write failed after retries", "e", 8, insert(user(1))),
        DeadLetter("replication", "target write failed after retries", "e", 8, insert(user(2))),
        DeadLetter("fanout", "PutEvents failed after 3 attempt(s)", "e", 3, insert(user(1))),
    ])
    DeadLetterQueue(sqs, aws["IngestDlqUrl"]).send([
        DeadLetter("ingest", "device: required", "InvalidMessage: device: required", 1, sqs_message({"user_id": "u"})),
    ])
    sqs.send_message(QueueUrl=aws["IngestDlqUrl"], MessageBody='{"user_id": "u-raw"}')


def test_status_shows_item_counts_and_queue_depths(aws: StageResources, busy_stage: None, run_ops: RunOps,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert run_ops("status") == 0
    rows = table_rows(capsys.readouterr().out)
    counts = {row[0]: row[2] for row in rows if len(row) == 3}
    assert counts["users (source)"] == "12" and counts["users by location (target)"] == "0"
    depths = {row[0].split(":")[0]: row[1] for row in rows if len(row) == 4}
    assert depths == {"ingest": "3", "ingest DLQ": "2", "stream DLQ": "3"}


def test_status_peek_counts_dead_letters_by_consumer_and_reason_and_leaves_them(
        aws: StageResources, busy_stage: None, run_ops: RunOps, capsys: pytest.CaptureFixture[str]) -> None:
    # WHEN peeking
    assert run_ops("status", "--peek", "--approximate") == 0

    # THEN letters are grouped by queue, consumer and reason
    rows = table_rows(capsys.readouterr().out)
    letters = {(row[0], row[1], row[2]): (row[3], row[4]) for row in rows if len(row) == 6}
    assert letters == {  # (count, of which kept in S3)
        ("stream DLQ", "replication", "target write failed after retries"): ("2", "0"),
        ("stream DLQ", "fanout", "PutEvents failed after 3 attempt(s)"): ("1", "0"),
        ("ingest DLQ", "ingest", "device: required"): ("1", "0"),
        ("ingest DLQ", "ingest", "moved by the ingest queue's redrive policy (maxReceiveCount)"): ("1", "0"),
    }
    # AND every letter is visible again at once
    sqs = boto3.client("sqs")
    visible = sqs.get_queue_attributes(QueueUrl=aws["StreamDlqUrl"],
                                       AttributeNames=["ApproximateNumberOfMessages"])["Attributes"]
    assert visible["ApproximateNumberOfMessages"] == "3"


def test_status_of_an_empty_stage(aws: StageResources, run_ops: RunOps, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_ops("status", "--peek") == 0
    assert "no dead letters" in capsys.readouterr().out


def test_status_names_what_is_missing_and_exits_1(aws: StageResources, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN a stage whose orders table and stream DLQ were never provisioned
    from ops.__main__ import main

    variables = {**aws.env(), "ORDERS_TABLE": "nope-orders",
                 "STREAM_DLQ_URL": aws["StreamDlqUrl"].replace("stream-dlq", "nope-dlq")}
    for name in variables:
        monkeypatch.delenv(name, raising=False)
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"stages": {"half": {"environment_variables": variables}}}))

    # WHEN asking for status THEN the missing ones are named, the others counted, and it exits 1
    assert main(["status", "--stage", "half", "--config", str(config), "--wait-seconds", "0"]) == 1
    out = capsys.readouterr().out
    assert "ResourceNotFoundException" in out and "NonExistentQueue" in out
    assert "2 resource(s) of stage half could not be read" in out


def test_status_of_a_stage_that_is_not_provisioned_is_one_line_without_tables(
        aws: StageResources, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN a stage whose config names tables and queues that this account does not have (prod, never provisioned)
    from ops.__main__ import main

    variables = {name: value.replace("stream-pipeline-test", "stream-pipeline-nowhere")
                 for name, value in aws.env().items()}
    for name in variables:
        monkeypatch.delenv(name, raising=False)
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"stages": {"prod": {"environment_variables": variables}}}))

    # WHEN asking for its status
    code = main(["status", "--stage", "prod", "--config", str(config), "--peek", "--wait-seconds", "0"])

    # THEN one line says so and how to fix it; no table of errors comes first
    captured = capsys.readouterr()
    assert code == 1
    assert captured.out == ""
    assert captured.err == ("python -m ops status: error: stage prod is not provisioned in region us-east-1: none of "
                            "its 4 tables and 3 queues exist (create them with `python -m ops provision --stage "
                            "prod`)\n")


def test_a_stage_none_of_whose_resources_can_be_read_names_the_errors() -> None:
    from ops.status import unreadable_stage

    denied = "[red]AccessDeniedException[/red]"
    line = unreadable_stage("prod", [("users", "t", denied)], [("ingest", "[red]AccessDenied[/red]", "-", "-")],
                            "at http://127.0.0.1:4566")
    assert line == ("none of stage prod's 1 tables and 1 queues could be read at http://127.0.0.1:4566: "
                    "AccessDenied, AccessDeniedException")
    assert unreadable_stage("prod", [("users", "t", "12")], [("ingest", denied, "-", "-")], "here") is None
