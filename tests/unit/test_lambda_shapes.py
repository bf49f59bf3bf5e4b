"""AWS API answers → Lambda event records (tooling.lambda_shapes), for the local stack and redrive alike."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from ops.dead_letter_inbox import classify
from tooling.lambda_shapes import lambda_bus_event, lambda_sqs_record, lambda_stream_record

STREAM_ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/2026-11-22T00:00:00.000"
QUEUE_ARN = "arn:aws:sqs:us-east-1:123456789012:q"


def test_a_stream_record_gets_epoch_seconds_base64_binary_and_the_stream_arn():
    # GIVEN a record as boto3's GetRecords returns it (datetime, bytes, no eventSourceARN)
    record = {
        "eventID": "e1", "eventName": "INSERT", "eventVersion": "1.0", "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": {"ApproximateCreationDateTime": datetime(2026, 11, 22, 12, 0, 1, 500000, tzinfo=UTC),
                     "Keys": {"id": {"S": "a"}}, "NewImage": {"id": {"S": "a"}, "blob": {"B": b"\x00\x01"},
                                                              "set": {"BS": [b"x"]}},
                     "SequenceNumber": "111", "SizeBytes": 10, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    }
    # WHEN shaped
    shaped = lambda_stream_record(record, STREAM_ARN)
    # THEN it is exactly what Lambda delivers
    assert shaped["eventSourceARN"] == STREAM_ARN
    assert shaped["eventVersion"] == "1.1"
    assert shaped["dynamodb"]["ApproximateCreationDateTime"] == 1795348801
    assert shaped["dynamodb"]["NewImage"]["blob"] == {"B": "AAE="}
    assert shaped["dynamodb"]["NewImage"]["set"] == {"BS": ["eA=="]}
    assert shaped["dynamodb"]["SequenceNumber"] == "111"


def test_an_sqs_message_gets_lambdas_field_names():
    body = '{"user_id": "u"}'
    message = {
        "MessageId": "m1", "ReceiptHandle": "r1", "Body": body, "MD5OfBody": hashlib.md5(body.encode()).hexdigest(),
        "Attributes": {"ApproximateReceiveCount": "2", "SentTimestamp": "1"},
        "MessageAttributes": {"kind": {"StringValue": "device", "DataType": "String"},
                              "raw": {"BinaryValue": b"\xff", "DataType": "Binary"}},
        "MD5OfMessageAttributes": "abc",
    }
    shaped = lambda_sqs_record(message, QUEUE_ARN)
    assert shaped == {
        "messageId": "m1", "receiptHandle": "r1", "body": body,
        "attributes": {"ApproximateReceiveCount": "2", "SentTimestamp": "1"},
        "messageAttributes": {
            "kind": {"stringValue": "device", "stringListValues": [], "binaryListValues": [], "dataType": "String"},
            "raw": {"binaryValue": "/w==", "stringListValues": [], "binaryListValues": [], "dataType": "Binary"},
        },
        "md5OfBody": message["MD5OfBody"], "md5OfMessageAttributes": "abc",
        "eventSource": "aws:sqs", "eventSourceARN": QUEUE_ARN, "awsRegion": "us-east-1",
    }


def test_a_redriven_message_has_lambdas_shape_and_no_receipt_handle():
    # GIVEN a raw message the ingest queue's redrive policy moved to its DLQ, with a message attribute
    message = {"MessageId": "m1", "ReceiptHandle": "dlq-handle", "Body": "{}", "MD5OfBody": "x",
               "Attributes": {"SentTimestamp": "1"},
               "MessageAttributes": {"kind": {"StringValue": "device", "DataType": "String"}}}
    # WHEN redrive reads it as an ingest message
    letter = classify(message, raw_is_ingest=True).letter
    # THEN its record is Lambda's SQS record (the consumer reads no other shape), minus the DLQ's receipt handle
    assert letter is not None
    assert letter.record == {key: value for key, value in lambda_sqs_record(message, "").items()
                             if key != "receiptHandle"}
    assert letter.record["messageAttributes"]["kind"]["stringValue"] == "device"
    assert "receiptHandle" not in letter.record


def test_a_bus_event_gains_the_fields_the_emulator_leaves_out():
    shaped = lambda_bus_event({"id": "1", "detail-type": "INSERT", "source": "s", "time": "t", "detail": {"a": 1}})
    assert shaped["account"] == "123456789012"
    assert shaped["region"] == "us-east-1"
    assert shaped["version"] == "0"
    assert shaped["resources"] == []
    assert shaped["detail"] == {"a": 1}
