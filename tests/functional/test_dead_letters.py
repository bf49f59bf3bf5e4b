"""The dead-letter queue adapter against moto: envelope, sizing by the queue's limit, letters of any size
(S3), retries of failed entries, refusal."""

from __future__ import annotations

import base64
import json
import os
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest

from chalicelib import clients
from chalicelib.backoff import Backoff, no_sleep
from chalicelib.dead_letters import DeadLetter, DeadLetterQueue, LetterStore, parse_location
from chalicelib.faults import Fault
from tests.support.events import insert, modify
from tests.support.faults import CallCounter, FaultyClient, aws_error, raising
from tests.support.queues import drain


def test_letters_carry_the_spec_envelope_and_the_record_unchanged(aws):
    record = insert({"email": "a@x.io", "n": 1})
    letter = DeadLetter("replication", "why", "Err: detail", 3, record, datetime(2026, 1, 2, 3, 4, 5, 6000, UTC))
    assert DeadLetterQueue(boto3.client("sqs"), aws["StreamDlqUrl"]).send([letter]).stored == [letter]
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
    queue = DeadLetterQueue(sqs, aws["StreamDlqUrl"], backoff=Backoff(max_attempts=4, sleep=no_sleep))
    delivery = queue.send([DeadLetter("orders", "r", "e", 1, {"n": n}) for n in range(3)])
    assert sorted(b["record"]["n"] for b in drain(aws["StreamDlqUrl"])) == [0, 1, 2]
    assert len(delivery.stored) == 3 and delivery.failed == []
    assert queue.stats.retries == 2


def test_a_queue_that_does_not_exist_stores_nothing_and_says_why_at_once(aws):
    # GIVEN a queue URL that names no queue (a systemic fault: no retry can fix it)
    missing = aws["StreamDlqUrl"].rsplit("/", 1)[0] + "/no-such-queue"
    sqs = boto3.client("sqs")
    counter = CallCounter(sqs)
    queue = DeadLetterQueue(sqs, missing, backoff=Backoff(max_attempts=4, sleep=no_sleep))
    # WHEN letters are sent
    delivery = queue.send([DeadLetter("ingest", "r", "e", 1, {}), DeadLetter("ingest", "r", "e", 1, {})])
    # THEN none is stored, each says why, and only one request was made (learning the queue's limit)
    assert delivery.stored == []
    assert {(f.fault, f.code) for _, f in delivery.failed} == {
        (Fault.SYSTEMIC, "AWS.SimpleQueueService.NonExistentQueue")}
    assert sum(counter.calls.values()) == 1


# --- letters of any size ------------------------------------------------------------------------

def with_limit(aws: Any, limit: int) -> None:
    """The stage's stream DLQ with MaximumMessageSize `limit` (what an operator may set)."""
    boto3.client("sqs").set_queue_attributes(QueueUrl=aws["StreamDlqUrl"],
                                             Attributes={"MaximumMessageSize": str(limit)})


def letter_queue(aws: Any, sqs: Any = None, s3: Any = None) -> DeadLetterQueue:
    store = LetterStore(s3 or boto3.client("s3"), aws["DeadLetterBucket"], Backoff(max_attempts=3, sleep=no_sleep))
    return DeadLetterQueue(sqs or boto3.client("sqs"), aws["StreamDlqUrl"], store,
                           Backoff(max_attempts=3, sleep=no_sleep))


def test_the_queues_limit_is_learned_once_per_process_and_sizes_each_batch(aws):
    # GIVEN a queue that takes 64 KiB messages and letters of ~20 KB
    with_limit(aws, 65536)
    sqs = boto3.client("sqs")
    counter = CallCounter(sqs)
    letters = [DeadLetter("fanout", "r", "e", 1, {"n": n, "pad": "x" * 20_000}) for n in range(7)]
    # WHEN two invocations send them
    letter_queue(aws, sqs).send(letters[:4])
    letter_queue(aws, sqs).send(letters[4:])
    # THEN GetQueueAttributes ran once, and each request stayed within 64 KiB: 3 + 1, then 3
    assert counter["GetQueueAttributes"] == 1
    batches = [request["Entries"] for name, request in counter.requests if name == "SendMessageBatch"]
    assert [len(entries) for entries in batches] == [3, 1, 3]
    assert all(sum(len(e["MessageBody"]) for e in entries) <= 65536 for entries in batches)
    assert sorted(b["record"]["n"] for b in drain(aws["StreamDlqUrl"])) == list(range(7))


def test_a_letter_larger_than_its_queue_accepts_is_kept_whole_in_s3_behind_a_pointer(aws):
    # GIVEN a queue that takes 256 KiB and a 300 KB record
    with_limit(aws, 262144)
    record = insert({"email": "big@example.com", "blob": "b" * 300_000})
    letter = DeadLetter("fanout", "PutEvents refused the record: InvalidArgument", "InvalidArgument: too big", 1,
                        record, datetime(2026, 11, 22, 10, 49, 11, tzinfo=UTC))
    # WHEN it is sent
    delivery = letter_queue(aws).send([letter, DeadLetter("fanout", "r", "e", 1, {"small": True})])
    # THEN both are stored; the queue holds the pointer envelope (≤ 256 KiB), the same fields and no record
    assert len(delivery.stored) == 2
    bodies = drain(aws["StreamDlqUrl"])
    (pointer,) = [body for body in bodies if "recordLocation" in body]
    assert len(json.dumps(pointer)) <= 262144 and pointer["record"] is None
    assert {k: v for k, v in pointer.items() if k not in ("record", "recordLocation")} == {
        k: v for k, v in letter.to_body().items() if k != "record"}
    # ... and the object at recordLocation is the whole envelope, its record unchanged, under the consumer's prefix
    bucket, key = parse_location(pointer["recordLocation"])
    assert bucket == aws["DeadLetterBucket"] and key.startswith("fanout/2026-11-22/")
    stored = json.loads(boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())
    assert stored == letter.to_body()
    assert LetterStore(boto3.client("s3"), bucket).get(pointer["recordLocation"]) == letter


def test_a_letter_of_a_modify_of_a_390_kb_binary_item_is_kept_too(aws):
    # GIVEN a MODIFY of a 390 KB item holding binary data: two images, base64 in the record (~1.05 MB letter)
    blob = os.urandom(390 * 1024)
    old = {"email": "bin@example.com", "blob": blob, "v": 1}
    letter = DeadLetter("replication", "r", "e", 1, modify(old, {**old, "v": 2}), datetime(2026, 11, 22, tzinfo=UTC))
    assert len(letter.to_json()) > 1_048_576
    # WHEN it is sent to the template's DLQ (1 MiB)
    delivery = letter_queue(aws).send([letter])
    # THEN it is stored: a pointer in the queue, the whole letter (binary intact) in S3
    assert len(delivery.stored) == 1
    (pointer,) = drain(aws["StreamDlqUrl"])
    kept = LetterStore(boto3.client("s3"), aws["DeadLetterBucket"]).get(pointer["recordLocation"])
    assert base64.b64decode(kept.record["dynamodb"]["OldImage"]["blob"]["B"]) == blob
    assert kept == letter


def test_a_limit_lowered_while_a_process_is_warm_is_learned_again_and_the_next_delivery_keeps_the_letter(aws):
    # GIVEN a process that learned the queue's 1 MiB limit, then an operator lowers it to 256 KiB
    letter_queue(aws).send([DeadLetter("fanout", "r", "e", 1, {"small": True})])
    with_limit(aws, 262144)
    big = DeadLetter("fanout", "r", "e", 1, {"blob": "b" * 300_000})
    # WHEN a 300 KB letter is sent THEN SQS refuses it (too long for the queue now): reported, not lost
    (failed,) = letter_queue(aws).send([big]).failed
    assert failed[1].fault is Fault.ITEM
    # AND the next delivery (Lambda's retry) learns the limit again and keeps the letter in S3
    assert letter_queue(aws).send([big]).stored == [big]
    assert "recordLocation" in drain(aws["StreamDlqUrl"])[-1]


def test_a_letter_s3_refuses_is_reported_and_its_neighbours_are_stored(aws):
    with_limit(aws, 1024)
    s3 = FaultyClient(boto3.client("s3"), put_object=raising(aws_error("s3", "PutObject", "AccessDenied", status=403)))
    delivery = letter_queue(aws, s3=s3).send([DeadLetter("orders", "r", "e", 1, {"pad": "p" * 2000}),
                                              DeadLetter("orders", "r", "e", 1, {"n": 1})])
    assert [letter.record for letter in delivery.stored] == [{"n": 1}]
    assert [(failure.fault, failure.code) for _, failure in delivery.failed] == [(Fault.SYSTEMIC, "AccessDenied")]
    assert s3.calls["put_object"] == 1  # not retried


def test_a_pointer_envelope_reads_back_as_a_letter_without_its_record():
    letter = DeadLetter("ingest", "r", "e", 0, {"messageId": "m"}, datetime(2026, 11, 22, tzinfo=UTC)).pointing_to(
        "s3://b/ingest/x.json")
    assert DeadLetter.from_json(letter.to_json()) == letter and letter.record is None
    with pytest.raises(ValueError, match="recordLocation"):
        DeadLetter.from_json(json.dumps({**letter.to_body(), "recordLocation": "https://elsewhere"}))


@pytest.fixture(autouse=True)
def fresh_learning() -> Any:
    clients.reset()  # what a previous test's process learned about a queue of the same URL
    yield


@pytest.mark.parametrize("body", ['{"consumer": "nobody", "record": {}}', "[]", '{"consumer": "ingest"}'])
def test_from_json_refuses_what_is_not_a_dead_letter(body):
    with pytest.raises(ValueError):
        DeadLetter.from_json(body)
