"""The pure parts of ingestion: sorting a batch, what deleting a record needs, queue ARNs."""

from __future__ import annotations

from chalicelib.ingest.consumer import plan_batch
from chalicelib.source_queue import QueueRef, Receipt, queue_of, receipt_of
from tests.support.events import INGEST_QUEUE_ARN, sqs_message

GOOD = {"user_id": "u-1", "device": "pixel-9", "location": "Lisbon"}


def test_a_batch_splits_into_sightings_and_rejections_in_order():
    # GIVEN a batch of two valid and two invalid messages
    records = [sqs_message(GOOD), sqs_message("oops"), sqs_message({**GOOD, "user_id": "u-2"}), sqs_message([])]
    # WHEN it is planned
    plan = plan_batch(records)
    # THEN each record lands on one side, in batch order, next to its raw record
    assert [record for record, _ in plan.sightings] == [records[0], records[2]]
    assert [sighting.user_id for _, sighting in plan.sightings] == ["u-1", "u-2"]
    assert [(record, rejection.reason) for record, rejection in plan.rejections] == [
        (records[1], "body: must be a JSON object, got invalid JSON"), (records[3],
         "body: must be a JSON object, got array"),
    ]


def test_an_empty_batch_plans_nothing():
    plan = plan_batch([])
    assert plan.sightings == [] and plan.rejections == []


def test_receipt_of_a_record_names_its_queue_and_handle():
    record = sqs_message(GOOD, message_id="m-1", receipt_handle="rh-1")
    assert receipt_of(record) == Receipt("m-1", "rh-1", INGEST_QUEUE_ARN)


def test_a_record_without_handle_or_queue_cannot_be_deleted():
    no_handle = sqs_message(GOOD)
    del no_handle["receiptHandle"]
    no_queue = sqs_message(GOOD)
    no_queue["eventSourceARN"] = ""
    assert receipt_of(no_handle) is None
    assert receipt_of(no_queue) is None
    assert receipt_of("junk") is None


def test_queue_of_reads_an_sqs_arn():
    assert queue_of("arn:aws:sqs:eu-west-1:111122223333:my-queue") == QueueRef("eu-west-1", "111122223333", "my-queue")
    assert queue_of("arn:aws:sns:eu-west-1:111122223333:topic") is None
    assert queue_of("arn:aws:sqs:eu-west-1::my-queue") is None
    assert queue_of("my-queue") is None

