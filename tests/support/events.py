"""Lambda event factories with the real shapes: unique ids, increasing sequence numbers, epoch times."""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import time
import uuid
from collections.abc import Mapping
from typing import Any

from boto3.dynamodb.types import TypeSerializer

REGION = "us-east-1"
ACCOUNT = "123456789012"
_sequence = itertools.count(100000000000000000000001)
_serializer = TypeSerializer()


def lambda_image(item: Mapping[str, Any]) -> dict[str, Any]:
    """Plain values → a stream image as Lambda delivers it (binary as base64 text)."""
    return {name: _lambda_value(_serializer.serialize(value)) for name, value in item.items()}


def _lambda_value(typed: dict[str, Any]) -> dict[str, Any]:
    (kind, value), = typed.items()
    if kind == "B":
        return {"B": base64.b64encode(bytes(value)).decode()}
    if kind == "BS":
        return {"BS": [base64.b64encode(bytes(v)).decode() for v in value]}
    if kind == "M":
        return {"M": {k: _lambda_value(v) for k, v in value.items()}}
    if kind == "L":
        return {"L": [_lambda_value(v) for v in value]}
    return typed


def stream_record(
    event_name: str,
    keys: Mapping[str, Any],
    new: Mapping[str, Any] | None = None,
    old: Mapping[str, Any] | None = None,
    *,
    table: str = "stream-pipeline-test-users",
    sequence_number: str | None = None,
    created_at: float | None = None,
    view_type: str = "NEW_AND_OLD_IMAGES",
) -> dict[str, Any]:
    """One DynamoDB stream record exactly as Lambda hands it to a function."""
    dynamodb: dict[str, Any] = {
        "ApproximateCreationDateTime": int(created_at if created_at is not None else time.time()),
        "Keys": lambda_image(keys),
        "SequenceNumber": sequence_number or str(next(_sequence)),
        "StreamViewType": view_type,
    }
    if new is not None:
        dynamodb["NewImage"] = lambda_image(new)
    if old is not None:
        dynamodb["OldImage"] = lambda_image(old)
    dynamodb["SizeBytes"] = len(json.dumps(dynamodb, default=str))
    return {
        "eventID": uuid.uuid4().hex,
        "eventName": event_name,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": REGION,
        "dynamodb": dynamodb,
        "eventSourceARN": f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{table}/stream/2026-11-22T00:00:00.000",
    }


def insert(item: Mapping[str, Any], key_names: tuple[str, ...] = ("email",), **kw: Any) -> dict[str, Any]:
    """An INSERT record of `item`."""
    return stream_record("INSERT", {k: item[k] for k in key_names}, new=item, **kw)


def modify(old: Mapping[str, Any], new: Mapping[str, Any], key_names: tuple[str, ...] = ("email",),
           **kw: Any) -> dict[str, Any]:
    """A MODIFY record from `old` to `new`."""
    return stream_record("MODIFY", {k: new[k] for k in key_names}, new=new, old=old, **kw)


def remove(old: Mapping[str, Any], key_names: tuple[str, ...] = ("email",), **kw: Any) -> dict[str, Any]:
    """A REMOVE record of `old`."""
    return stream_record("REMOVE", {k: old[k] for k in key_names}, old=old, **kw)


def stream_event(*records: dict[str, Any]) -> dict[str, Any]:
    """A DynamoDB stream Lambda event."""
    return {"Records": list(records)}


INGEST_QUEUE_ARN = f"arn:aws:sqs:{REGION}:{ACCOUNT}:stream-pipeline-test-ingest"


def sqs_message(body: str | Mapping[str, Any], *, queue_arn: str = INGEST_QUEUE_ARN,
                message_id: str | None = None, sent_at_ms: int | None = None,
                receipt_handle: str | None = None, receive_count: int = 1) -> dict[str, Any]:
    """One SQS record as Lambda delivers it, with a unique messageId."""
    text = body if isinstance(body, str) else json.dumps(body)
    sent = sent_at_ms if sent_at_ms is not None else int(time.time() * 1000)
    message_id = message_id or str(uuid.uuid4())
    return {
        "messageId": message_id,
        "receiptHandle": receipt_handle or f"receipt-{message_id}",
        "body": text,
        "attributes": {
            "ApproximateReceiveCount": str(receive_count),
            "SentTimestamp": str(sent),
            "SenderId": "AIDAEXAMPLE",
            "ApproximateFirstReceiveTimestamp": str(sent + 5),
        },
        "messageAttributes": {},
        "md5OfBody": hashlib.md5(text.encode()).hexdigest(),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": REGION,
    }


def sqs_event(*records: dict[str, Any]) -> dict[str, Any]:
    """An SQS Lambda event."""
    return {"Records": list(records)}


def api_gateway_event(method: str, resource: str, path: str, body: str | None = None, *, stage: str = "api",
                      called_path: str | None = None, path_parameters: Mapping[str, str] | None = None,
                      content_type: str = "application/json") -> dict[str, Any]:
    """An API Gateway REST proxy event as Lambda receives it behind stage `stage` (Chalice's deployed shape).

    `path` is the route with its values (`/users`); `requestContext.path` is what the client called, the stage
    first (`/api/users`), or `called_path` (a custom domain's base path instead of the stage).
    """
    request_id = str(uuid.uuid4())
    headers = {"Content-Type": content_type, "Host": f"abc123.execute-api.{REGION}.amazonaws.com",
               "X-Forwarded-Proto": "https"}
    return {
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": {name: [value] for name, value in headers.items()},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": dict(path_parameters) if path_parameters else None,
        "stageVariables": None,
        "requestContext": {
            "resourceId": "a1b2c3", "resourcePath": resource, "httpMethod": method,
            "extendedRequestId": request_id, "requestTime": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime()),
            "path": called_path if called_path is not None else f"/{stage}{path}",
            "accountId": ACCOUNT, "protocol": "HTTP/1.1", "stage": stage, "domainPrefix": "abc123",
            "requestTimeEpoch": int(time.time() * 1000), "requestId": request_id,
            "identity": {"sourceIp": "203.0.113.7", "userAgent": "curl/8.5.0"},
            "domainName": f"abc123.execute-api.{REGION}.amazonaws.com", "apiId": "abc123",
        },
        "body": body,
        "isBase64Encoded": False,
    }
