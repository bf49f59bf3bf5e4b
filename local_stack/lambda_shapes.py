"""Records as the emulator returns them → records exactly as Lambda hands them to a function.

boto3's GetRecords answer decodes binary to bytes and parses ApproximateCreationDateTime to a datetime,
and may lack eventSourceARN; Lambda delivers base64 text, epoch seconds and the stream ARN.
"""

from __future__ import annotations

import base64
from datetime import datetime, timezone
from typing import Any, Mapping


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
        "eventVersion": record.get("eventVersion", "1.1"),
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
        moment = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        return int(moment.timestamp())
    return value
