"""Messages and records as the AWS APIs return them → records exactly as Lambda hands them to a function.

boto3's GetRecords answer decodes binary to bytes and parses ApproximateCreationDateTime to a datetime,
and may lack eventSourceARN; Lambda delivers base64 text, epoch seconds and the stream ARN. SQS's API
names message attributes `StringValue`/`DataType`; Lambda's record names them `stringValue`/`dataType`.
The local stack's pollers and the operator's redrive build records here, so both hand the app one shape.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any


def lambda_attribute(value: Mapping[str, Any]) -> dict[str, Any]:
    """One typed attribute value with binary as base64 text (recursively)."""
    (kind, inner), = value.items()
    if kind == "B":
        return {"B": _b64(inner)}
    if kind == "BS":
        return {"BS": [_b64(v) for v in inner]}
    if kind == "M":
        return {"M": {k: lambda_attribute(v) for k, v in inner.items()}}
    if kind == "L":
        return {"L": [lambda_attribute(v) for v in inner]}
    return {kind: inner}


def lambda_stream_record(record: Mapping[str, Any], stream_arn: str, region: str = "us-east-1") -> dict[str, Any]:
    """A GetRecords record as a Lambda DynamoDB-stream event record."""
    source = record.get("dynamodb", {})
    dynamodb: dict[str, Any] = {}
    for field, value in source.items():
        if field in ("Keys", "NewImage", "OldImage"):
            dynamodb[field] = {name: lambda_attribute(v) for name, v in value.items()}
        elif field == "ApproximateCreationDateTime":
            dynamodb[field] = _epoch_seconds(value)
        else:
            dynamodb[field] = value
    shaped = {
        "eventID": record.get("eventID"),
        "eventName": record.get("eventName"),
        "eventVersion": "1.1",  # what Lambda delivers (moto says 1.0)
        "eventSource": "aws:dynamodb",
        "awsRegion": record.get("awsRegion") or region,
        "dynamodb": dynamodb,
        "eventSourceARN": record.get("eventSourceARN") or stream_arn,
    }
    if "userIdentity" in record:  # TTL deletes carry the dynamodb.amazonaws.com service principal
        shaped["userIdentity"] = record["userIdentity"]
    return shaped


def _b64(value: Any) -> str:
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(bytes(value)).decode("ascii")
    return str(value)  # already base64 text


def _epoch_seconds(value: Any) -> int | float:
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return int(moment.timestamp())
    return value


def lambda_sqs_record(message: Mapping[str, Any], queue_arn: str = "", region: str | None = None, *,
                      receipt_handle: bool = True) -> dict[str, Any]:
    """A ReceiveMessage message as a Lambda SQS event record.

    `region` defaults to the queue ARN's. `receipt_handle=False` leaves the handle out: a record replayed
    from a dead-letter queue must never delete a message by it.
    """
    shaped: dict[str, Any] = {"messageId": message["MessageId"]}
    if receipt_handle:
        shaped["receiptHandle"] = message["ReceiptHandle"]
    shaped.update({
        "body": message.get("Body", ""),
        "attributes": dict(message.get("Attributes") or {}),
        "messageAttributes": {name: _lambda_message_attribute(value)
                              for name, value in (message.get("MessageAttributes") or {}).items()},
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region if region is not None else _arn_region(queue_arn),
    })
    if "MD5OfMessageAttributes" in message:
        shaped["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    return shaped


def _arn_region(arn: str) -> str:
    parts = arn.split(":")
    return parts[3] if len(parts) > 3 else ""


def lambda_bus_event(event: Mapping[str, Any], account: str = "123456789012",
                     region: str = "us-east-1") -> dict[str, Any]:
    """An EventBridge event (as a rule delivers it to a target) with every field Lambda's event carries."""
    shaped: dict[str, Any] = {
        "version": "0",
        "id": "",
        "detail-type": "",
        "source": "",
        "account": account,
        "time": "",
        "region": region,
        "resources": [],
        "detail": {},
    }
    shaped.update(event)
    return shaped


def _lambda_message_attribute(value: Mapping[str, Any]) -> dict[str, Any]:
    shaped: dict[str, Any] = {
        "stringListValues": list(value.get("StringListValues", [])),
        "binaryListValues": [_b64(v) for v in value.get("BinaryListValues", [])],
        "dataType": value.get("DataType", "String"),
    }
    if "StringValue" in value:
        shaped["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        shaped["binaryValue"] = _b64(value["BinaryValue"])
    return shaped
