"""Helpers of the operator-verb tests: users, seeding tables, reading them back."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import boto3

from chalicelib.replication.projection import TargetKey
from chalicelib.stream.images import plain_item, typed_item

RunOps = Callable[..., int]


def user(n: int, **changes: Any) -> dict[str, Any]:
    """User number `n`, spread over a few states and cities."""
    item = {
        "email": f"user{n:05d}@example.com",
        "state": ["CA", "NY", "TX", "WA"][n % 4],
        "city": ["Springfield", "Riverside", "Fairview"][n % 3],
        "zipcode": f"{n % 100000:05d}",
        "active": n % 2 == 0,
        "created_at": "2026-11-01T00:00:00.000Z",
        "updated_at": "2026-11-01T00:00:00.000Z",
    }
    item.update(changes)
    return item


def put_items(table: str, items: Iterable[Mapping[str, Any]]) -> None:
    """Write items straight into a table (no stream consumer runs in these tests)."""
    dynamodb = boto3.client("dynamodb")
    batch: list[dict[str, Any]] = []
    for item in items:
        batch.append({"PutRequest": {"Item": typed_item(item)}})
        if len(batch) == 25:
            dynamodb.batch_write_item(RequestItems={table: batch})
            batch = []
    if batch:
        dynamodb.batch_write_item(RequestItems={table: batch})


def all_items(table: str) -> list[dict[str, Any]]:
    """Every item of a table, as plain values."""
    pages = boto3.client("dynamodb").get_paginator("scan").paginate(TableName=table)
    return [plain_item(item) for page in pages for item in page.get("Items", [])]


def target_by_key(table: str) -> dict[TargetKey, dict[str, Any]]:
    """The target table by key, every attribute as stored."""
    return {TargetKey(item["state"], item["city_email"]): item for item in all_items(table)}
