"""redrive: dead letters go back through the consumer that failed them; deleted only once applied."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import boto3
import pytest

from chalicelib import clients, components
from chalicelib.dead_letters import DeadLetter, DeadLetterQueue, parse_location
from chalicelib.replication.projection import TargetKey, project_user
from chalicelib.stream.images import plain_item, typed_item
from tests.ops.ops_support import RunOps, put_items, target_by_key, user
from tests.support.events import insert, modify, remove, sqs_message
from tests.support.faults import FaultyClient, client_error
from tests.support.resources import StageResources

ORDERS_TABLE = "stream-pipeline-test-orders"


def send_letters(url: str, *letters: DeadLetter) -> None:
    DeadLetterQueue(boto3.client("sqs"), url).send(list(letters))


def depth(url: str) -> int:
    """Messages in a queue, visible or not."""
    attributes = boto3.client("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=[
        "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])


def letter_bodies(url: str) -> list[str]:
    """Every message body visible in a queue (received with visibility 0, so they stay visible)."""
    sqs = boto3.client("sqs")
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0).get("Messages", [])
    return [m["Body"] for m in messages]


def pending_order(order_id: str) -> dict[str, Any]:
    return {"id": order_id, "name": "desk", "status": "PENDING", "created_at": "2026-11-22T10:00:00.000Z",
            "items": [{"sku": "A-1", "quantity": Decimal("2"), "unit_price": Decimal("9.99")}]}


def order(aws: StageResources, order_id: str) -> dict[str, Any]:
    answer = boto3.client("dynamodb").get_item(TableName=aws["OrdersTable"], Key=typed_item({"id": order_id}))
    return plain_item(answer["Item"])


def device_items(aws: StageResources) -> list[dict[str, Any]]:
    answer = boto3.client("dynamodb").scan(TableName=aws["DeviceMetadataTable"])
    return [plain_item(item) for item in answer["Items"]]


def sighting(user_id: str) -> dict[str, str]:
    return {"user_id": user_id, "device": "phone", "location": "Springfield"}


@pytest.fixture
def letters_of_every_consumer(aws: StageResources) -> dict[str, Any]:
    """One dead letter per consumer, plus a raw message the ingest queue's redrive policy moved."""
    alice = user(1)
    put_items(aws["UsersTable"], [alice])
    put_items(aws["OrdersTable"], [pending_order("o-1")])
    send_letters(aws["StreamDlqUrl"],
                 DeadLetter("replication", "target write failed after retries", "ThrottlingException: slow down",
                            8, insert(alice)),
                 DeadLetter("fanout", "PutEvents failed after 3 attempt(s)", "ThrottlingException", 3,
                            insert(alice)),
                 DeadLetter("orders", "order o-1 could not be updated after retries", "ThrottlingException", 4,
                            insert(pending_order("o-1"), key_names=("id",), table=ORDERS_TABLE)))
    send_letters(aws["IngestDlqUrl"],
                 DeadLetter("ingest", "device: required", "InvalidMessage: device: required", 1,
                            sqs_message(sighting("u-enveloped"))))
    boto3.client("sqs").send_message(QueueUrl=aws["IngestDlqUrl"], MessageBody=json.dumps(sighting("u-raw")))
    return {"alice": alice}


def test_redrive_applies_letters_of_every_consumer_and_empties_both_queues(
        aws: StageResources, letters_of_every_consumer: dict[str, Any], run_ops: RunOps,
        capsys: pytest.CaptureFixture[str]) -> None:
    alice = letters_of_every_consumer["alice"]

    # WHEN the operator redrives
    assert run_ops("redrive") == 0

    # THEN replication wrote alice's projection, fan-out published her event, the order was processed,
    # both ingest messages were stored, and both dead-letter queues are empty
    target = target_by_key(aws["UsersByLocationTable"])
    key = TargetKey(alice["state"], f"{alice['city']}#{alice['email']}")
    assert target[key] == project_user(alice)
    events = boto3.client("sqs").receive_message(QueueUrl=aws["SubscriberQueueUrl"], MaxNumberOfMessages=10)
    details = [json.loads(m["Body"])["detail"] for m in events.get("Messages", [])]
    assert [(d["eventName"], d["keys"]) for d in details] == [("INSERT", {"email": alice["email"]})]
    processed = order(aws, "o-1")
    assert processed["status"] == "PROCESSED" and processed["total"] == Decimal("19.98")
    assert sorted(item["user_id"] for item in device_items(aws)) == ["u-enveloped", "u-raw"]
    assert depth(aws["StreamDlqUrl"]) == 0 and depth(aws["IngestDlqUrl"]) == 0
    assert "deleted 5 applied letter(s)" in capsys.readouterr().out


def test_dry_run_applies_and_deletes_nothing(aws: StageResources, letters_of_every_consumer: dict[str, Any],
                                             run_ops: RunOps, capsys: pytest.CaptureFixture[str]) -> None:
    # WHEN redriving with --dry-run
    assert run_ops("redrive", "--dry-run") == 0

    # THEN it says what would happen, and every letter is still there, visible again
    out = capsys.readouterr().out
    assert "would apply" in out and "put " in out and "process the order" in out
    assert target_by_key(aws["UsersByLocationTable"]) == {}
    assert order(aws, "o-1")["status"] == "PENDING"
    assert device_items(aws) == []
    assert len(letter_bodies(aws["StreamDlqUrl"])) == 3
    assert len(letter_bodies(aws["IngestDlqUrl"])) == 2


@pytest.mark.parametrize("newer_change", ["modify", "move", "delete"])
def test_a_stale_replication_letter_replayed_after_a_newer_change_leaves_the_newer_state(
        aws: StageResources, run_ops: RunOps, newer_change: str) -> None:
    # GIVEN alice's INSERT failed and was dead-lettered, then a newer change was replicated by the stream
    alice = user(1)
    old_record = insert(alice)
    send_letters(aws["StreamDlqUrl"], DeadLetter("replication", "target write failed after retries", "e", 8,
                                                 old_record))
    now: dict[str, Any] | None = {
        "modify": user(1, active=False),
        "move": user(1, city="Shelbyville"),
        "delete": None,
    }[newer_change]
    newer_record = remove(alice) if now is None else modify(alice, now)
    put_items(aws["UsersTable"], [now] if now is not None else [])
    components.replication_consumer().handle([newer_record])
    before = target_by_key(aws["UsersByLocationTable"])

    # WHEN the stale letter is redriven
    assert run_ops("redrive") == 0

    # THEN the target still holds exactly the newer state (nothing resurrected), and the letter is gone
    expected = {} if now is None else {TargetKey(now["state"], f"{now['city']}#{now['email']}"): project_user(now)}
    assert before == expected  # the stream path writes exactly the projection
    assert target_by_key(aws["UsersByLocationTable"]) == expected
    assert depth(aws["StreamDlqUrl"]) == 0


def test_a_replication_letter_overwrites_an_older_target_item(aws: StageResources, run_ops: RunOps) -> None:
    # GIVEN the target holds alice as an older record wrote her, and the MODIFY after it was dead-lettered
    alice, changed = user(1), user(1, active=False)
    first, second = insert(alice), modify(alice, user(1, active=False))
    components.replication_consumer().handle([first])
    put_items(aws["UsersTable"], [changed])
    send_letters(aws["StreamDlqUrl"], DeadLetter("replication", "target write failed after retries", "e", 8, second))

    # WHEN redriven THEN the target holds exactly the change's projection
    assert run_ops("redrive") == 0
    (item,) = target_by_key(aws["UsersByLocationTable"]).values()
    assert item == project_user(changed)


def test_letters_that_fail_again_stay_with_their_reason(aws: StageResources, run_ops: RunOps,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN a fan-out letter while EventBridge still refuses, an ingest letter that is still invalid,
    # and a message on the stream DLQ that is no dead letter at all
    alice = user(1)
    send_letters(aws["StreamDlqUrl"], DeadLetter("fanout", "PutEvents failed after 3 attempt(s)", "e", 3,
                                                 insert(alice)))
    boto3.client("sqs").send_message(QueueUrl=aws["StreamDlqUrl"], MessageBody="hello")
    send_letters(aws["IngestDlqUrl"], DeadLetter("ingest", "device: required", "InvalidMessage: device: required", 1,
                                                 sqs_message({"user_id": "u-1", "location": "x"})))

    def refuse(_call: Any, **_kw: Any) -> Any:
        raise client_error("AccessDeniedException", "not allowed", "PutEvents")

    clients.override("events", FaultyClient(boto3.client("events"), put_events=refuse))

    # WHEN redriving
    assert run_ops("redrive") == 1

    # THEN every letter is still in its queue (no duplicates added), each outcome reported with its reason
    assert depth(aws["StreamDlqUrl"]) == 2 and depth(aws["IngestDlqUrl"]) == 1
    assert device_items(aws) == []
    out = capsys.readouterr().out
    assert "failed again" in out and "systemic: AccessDeniedException" in out
    assert "invalid" in out and "device: required" in out
    assert "unreadable" in out


def lambda_failure_record(aws: StageResources, function: str, records: list[dict[str, Any]]) -> dict[str, Any]:
    """Lambda's on-failure destination record for a users-stream batch (as the local stack writes it)."""
    from local_stack.stream_poller import failure_record

    shard = boto3.client("dynamodbstreams").describe_stream(
        StreamArn=aws["UsersStreamArn"])["StreamDescription"]["Shards"][0]["ShardId"]
    arn = f"arn:aws:lambda:us-east-1:123456789012:function:stream-pipeline-test-{function}"
    return failure_record(arn, "RetryAttemptsExhausted", 11, shard, records, aws["UsersStreamArn"], 1795000000.0)


def test_a_batch_lambda_gave_up_on_is_re_read_from_the_stream_and_replayed(
        aws: StageResources, run_ops: RunOps, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.support.streams import lambda_records_from_stream

    # GIVEN three users written, and Lambda's failure record for the replication batch holding
    # the last two (the consumer raised until Lambda gave up), plus one of a function we do not know
    dynamodb = boto3.client("dynamodb")
    users = [user(n) for n in range(3)]
    for item in users:
        dynamodb.put_item(TableName=aws["UsersTable"], Item=typed_item(item))
    records = lambda_records_from_stream(aws["UsersStreamArn"])
    sqs = boto3.client("sqs")
    sqs.send_message(QueueUrl=aws["StreamDlqUrl"],
                     MessageBody=json.dumps(lambda_failure_record(aws, "replicate_users", records[1:])))
    sqs.send_message(QueueUrl=aws["StreamDlqUrl"],
                     MessageBody=json.dumps(lambda_failure_record(aws, "someone_elses_function", records)))

    # WHEN peeking, then redriving
    assert run_ops("status", "--peek") == 0
    assert "Lambda gave up on a batch of 2 record(s)" in capsys.readouterr().out
    assert run_ops("redrive") == 1

    # THEN exactly the two users of that batch are replicated, its record is deleted, the other stays
    assert target_by_key(aws["UsersByLocationTable"]) == {
        TargetKey(u["state"], f"{u['city']}#{u['email']}"): project_user(u) for u in users[1:]}
    out = capsys.readouterr().out
    assert "unknown function" in out and "deleted 1 applied letter(s)" in out
    assert depth(aws["StreamDlqUrl"]) == 1


def test_a_letter_the_replication_consumer_wrote_itself_is_redriven(aws: StageResources, run_ops: RunOps) -> None:
    # GIVEN the replication consumer could not write alice (access denied) and dead-lettered her record
    alice = user(1)
    put_items(aws["UsersTable"], [alice])
    real = clients.client("dynamodb")

    def deny(_call: Any, **_kw: Any) -> Any:
        raise client_error("AccessDeniedException", "no", "BatchWriteItem")

    clients.override("dynamodb", FaultyClient(real, batch_write_item=deny))
    components.replication_consumer().handle([insert(alice)])
    assert depth(aws["StreamDlqUrl"]) == 1

    # WHEN the permission is fixed and the operator redrives
    clients.override("dynamodb", real)
    assert run_ops("redrive", "--consumer", "replication") == 0

    # THEN alice is replicated and the letter is gone
    assert target_by_key(aws["UsersByLocationTable"]) == {key_of(alice): project_user(alice)}
    assert depth(aws["StreamDlqUrl"]) == 0


def key_of(u: dict[str, Any]) -> TargetKey:
    return TargetKey(u["state"], f"{u['city']}#{u['email']}")


def test_a_user_who_moves_while_her_letter_is_replayed_is_not_resurrected(aws: StageResources,
                                                                         run_ops: RunOps) -> None:
    # GIVEN alice's INSERT was dead-lettered; she moves, and the stream replicates the move, in the
    # instant between redrive reading her and writing her old place
    alice, moved = user(1), user(1, city="Shelbyville")
    put_items(aws["UsersTable"], [alice])
    send_letters(aws["StreamDlqUrl"], DeadLetter("replication", "target write failed after retries", "e", 8,
                                                 insert(alice)))
    real = clients.client("dynamodb")
    moved_once = {"done": False}

    def move_first(call: Any, **kw: Any) -> Any:
        if not moved_once["done"]:
            moved_once["done"] = True
            put_items(aws["UsersTable"], [moved])
            clients.override("dynamodb", real)
            components.replication_consumer().handle([modify(alice, moved)])
            clients.override("dynamodb", faulty)
        return call(**kw)

    faulty = FaultyClient(real, put_item=move_first)
    clients.override("dynamodb", faulty)

    # WHEN redriving THEN only her new place is in the target, as the stream wrote it
    assert run_ops("redrive") == 0
    assert target_by_key(aws["UsersByLocationTable"]) == {key_of(moved): project_user(moved)}
    assert depth(aws["StreamDlqUrl"]) == 0


# --- letters too large for their queue: kept in S3, followed by every reader ---------------------------

def bucket_keys(aws: StageResources) -> list[str]:
    return [o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket=aws["DeadLetterBucket"]).get("Contents", [])]


@pytest.fixture
def large_fanout_letter(aws: StageResources) -> dict[str, Any]:
    """A 300 KB record whose publish EventBridge rejected, dead-lettered by the fan-out into a stream DLQ whose
    MaximumMessageSize is 256 KiB: its letter is in S3, the queue holds the pointer."""
    sqs = boto3.client("sqs")
    sqs.set_queue_attributes(QueueUrl=aws["StreamDlqUrl"], Attributes={"MaximumMessageSize": "262144"})
    clients.forget("MaximumMessageSize", aws["StreamDlqUrl"])  # as a freshly started function would
    big = insert({"email": "big@example.com", "state": "NY", "city": "Albany", "blob": "b" * 300_000})

    def reject(_call: Any, **kw: Any) -> Any:
        return {"FailedEntryCount": len(kw["Entries"]), "Entries": [
            {"ErrorCode": "InvalidArgument", "ErrorMessage": "injected"} for _ in kw["Entries"]]}

    real = clients.client("events")
    clients.override("events", FaultyClient(real, put_events=reject))
    assert components.fanout_consumer().handle([big]) == {"batchItemFailures": []}
    clients.override("events", real)
    (body,) = [body for body in letter_bodies(aws["StreamDlqUrl"]) if "recordLocation" in body]
    pointer = json.loads(body)
    assert len(body.encode()) <= 262144 and pointer["record"] is None
    bucket, key = parse_location(pointer["recordLocation"])
    assert bucket == aws["DeadLetterBucket"] and bucket_keys(aws) == [key]
    return {"record": big, "key": key}


def test_a_letter_kept_in_s3_is_replayed_then_its_object_and_message_are_deleted(
        aws: StageResources, large_fanout_letter: dict[str, Any], run_ops: RunOps,
        capsys: pytest.CaptureFixture[str]) -> None:
    # WHEN EventBridge takes it again and the operator redrives
    assert run_ops("redrive") == 0
    # THEN the record was published (truncated: it is over EventBridge's 256 KiB) from the letter in S3 ...
    events = boto3.client("sqs").receive_message(QueueUrl=aws["SubscriberQueueUrl"], MaxNumberOfMessages=10)
    (detail,) = [json.loads(m["Body"])["detail"] for m in events.get("Messages", [])]
    assert detail["eventID"] == large_fanout_letter["record"]["eventID"] and detail["truncated"] is True
    # ... and then the object and the message are gone
    assert bucket_keys(aws) == [] and depth(aws["StreamDlqUrl"]) == 0
    assert "deleted 1 applied letter(s)" in capsys.readouterr().out


def test_dry_run_and_peek_follow_the_pointer_and_change_nothing(
        aws: StageResources, large_fanout_letter: dict[str, Any], run_ops: RunOps,
        capsys: pytest.CaptureFixture[str]) -> None:
    assert run_ops("redrive", "--dry-run") == 0
    assert "would apply" in capsys.readouterr().out
    assert run_ops("status", "--peek") == 0
    out = capsys.readouterr().out
    assert "PutEvents refused the record: InvalidArgument" in out
    (row,) = [line for line in out.splitlines() if "InvalidArgument" in line]
    assert [cell.strip() for cell in row.split("│")[4:6]] == ["1", "1"]  # count, in S3
    assert bucket_keys(aws) == [large_fanout_letter["key"]] and len(letter_bodies(aws["StreamDlqUrl"])) == 1


def test_a_letter_whose_object_is_gone_is_reported_and_left(
        aws: StageResources, large_fanout_letter: dict[str, Any], run_ops: RunOps,
        capsys: pytest.CaptureFixture[str]) -> None:
    boto3.client("s3").delete_object(Bucket=aws["DeadLetterBucket"], Key=large_fanout_letter["key"])
    assert run_ops("redrive") == 1
    out = capsys.readouterr().out
    assert "unreadable" in out and "NoSuchKey" in out
    assert depth(aws["StreamDlqUrl"]) == 1


def test_redrive_needs_nothing_beyond_the_operator_policy(
        aws: StageResources, letters_of_every_consumer: dict[str, Any], large_fanout_letter: dict[str, Any],
        run_ops: RunOps) -> None:
    from ops import policies
    from tests.support.iam import SERVICE_PREFIX, Recorder, denied
    from tests.support.streams import lambda_records_from_stream

    # GIVEN letters of every consumer, one kept in S3, and Lambda's failure record of a stream batch
    boto3.client("sqs").send_message(QueueUrl=aws["StreamDlqUrl"], MessageBody=json.dumps(lambda_failure_record(
        aws, "replicate_users", lambda_records_from_stream(aws["UsersStreamArn"])[:1])))
    arns = policies.StageArns.from_environment("test", aws.env())
    recorder = Recorder(arns)
    for service in SERVICE_PREFIX:
        recorder.attach(clients.client(service))
    # WHEN the operator redrives them all
    assert run_ops("redrive") == 0
    # THEN every request it made is allowed by the operator policy `provision` writes for the stage
    requests = recorder.take()
    assert {action for action, _ in requests} >= {"s3:GetObject", "s3:DeleteObject", "sqs:ReceiveMessage",
                                                  "sqs:DeleteMessage", "dynamodb:GetRecords", "events:PutEvents"}
    assert denied(policies.operator_policy_document(policies.OPERATOR_REDRIVE, arns), requests) == []
