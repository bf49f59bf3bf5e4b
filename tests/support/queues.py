"""Reading what landed in a queue (dead letters, events a subscriber received)."""

from __future__ import annotations

import json
from typing import Any

import boto3


def drain(url: str) -> list[dict[str, Any]]:
    """Every message body on the queue (parsed), consuming them."""
    sqs = boto3.client("sqs")
    bodies: list[dict[str, Any]] = []
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        for message in messages:
            bodies.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return bodies
