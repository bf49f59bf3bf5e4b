"""The dead-letter queue adapter against moto: envelope, batching, retries of failed entries, refusal."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest

from chalicelib.backoff import Backoff, no_sleep
from chalicelib.dead_letters import DeadLetter, DeadLetterQueue, DeadLetterQueueUnavailable
from tests.support.events import insert
from tests.support.faults import CallCounter, FaultyClient


def drain(url: str) -> list[dict[str, Any]]:
    sqs = boto3.client("sqs")
    bodies: list[dict[str, Any]] = []
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        for message in messages:
            bodies.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return bodies


def test_letters_carry_the_spec_envelope_and_the_record_unchanged(aws):
    record = insert({"email": "a@x.io", "n": 1})
    letter = DeadLetter("replication", "why", "Err: detail", 3, record, datetime(2026, 1, 2, 3, 4, 5, 6000, UTC))
    DeadLetterQueue(boto3.client("sqs"), aws["StreamDlqUrl"]).send([letter])
    assert drain(aws["StreamDlqUrl"]) == [{
        "consumer": "replication", "reason": "why", "error": "Err: detail", "attempts": 3,
        "failed_at": "2026-01-02T03:04:05.006Z", "record": record,
    }]
    assert DeadLetter.from_json(letter.to_json()) == letter


def test_twenty_three_letters_take_three_calls(aws):
    sqs = boto3.client("sqs")
    counter = CallCounter(sqs)
    letters = [DeadLetter("fanout", "r", "e", 1, {"n": n}) for n in range(23)]
    DeadLetterQueue(sqs, aws["StreamDlqUrl"]).send(letters)
    assert counter["SendMessageBatch"] == 3
    assert sorted(b["record"]["n"] for b in drain(aws["StreamDlqUrl"])) == list(range(23))


def test_entries_sqs_reports_failed_are_resent_until_stored(aws):
    state = {"fail": 2}

    def fail_first_entry(real: Any, **kw: Any) -> Any:
        if state["fail"]:
            state["fail"] -= 1
            first, *rest = kw["Entries"]
            answer = real(QueueUrl=kw["QueueUrl"], Entries=rest) if rest else {"Successful": []}
            answer["Failed"] = [{"Id": first["Id"], "Code": "InternalError", "SenderFault": False}]
            return answer
        return real(**kw)

    sqs = FaultyClient(boto3.client("sqs"), send_message_batch=fail_first_entry)
    queue = DeadLetterQueue(sqs, aws["StreamDlqUrl"], Backoff(max_attempts=4, sleep=no_sleep))
    queue.send([DeadLetter("orders", "r", "e", 1, {"n": n}) for n in range(3)])
    assert sorted(b["record"]["n"] for b in drain(aws["StreamDlqUrl"])) == [0, 1, 2]
    assert len(queue.sent) == 3


def test_a_queue_that_does_not_exist_raises(aws):
    missing = aws["StreamDlqUrl"].rsplit("/", 1)[0] + "/no-such-queue"
    queue = DeadLetterQueue(boto3.client("sqs"), missing, Backoff(max_attempts=2, sleep=no_sleep))
    with pytest.raises(DeadLetterQueueUnavailable, match="1 dead letter"):
        queue.send([DeadLetter("ingest", "r", "e", 1, {})])


@pytest.mark.parametrize("body", ['{"consumer": "nobody", "record": {}}', "[]", '{"consumer": "ingest"}'])
def test_from_json_refuses_what_is_not_a_dead_letter(body):
    with pytest.raises(ValueError):
        DeadLetter.from_json(body)
