"""Histories of changes written to the users table, whose stream the reliability tests consume."""

from __future__ import annotations

import random
from typing import Any

import boto3

STATES = ("NY", "OH", "CA")
CITIES = tuple(f"City {n}" for n in range(20))


def write_history(table: str, records: int, rng: random.Random) -> None:
    """`records` changes on the users table: inserts, updates that move users or flip `active`, deletes
    (BatchWriteItem, a key at most once per request, so each change is one stream record, in order)."""
    dynamodb = boto3.client("dynamodb")
    emails: list[str] = []
    batch: list[dict[str, Any]] = []
    keys: set[str] = set()
    for n in range(records):
        roll = rng.random()
        if emails and roll < 0.12:
            index = rng.randrange(len(emails))
            emails[index], emails[-1] = emails[-1], emails[index]
            email = emails.pop()
            request: dict[str, Any] = {"DeleteRequest": {"Key": {"email": {"S": email}}}}
        else:
            if emails and roll < 0.4:
                email = rng.choice(emails)  # a MODIFY: a move, a new zipcode, `active` flipped
            else:
                email = f"user{n}@example.com"
                emails.append(email)
            request = {"PutRequest": {"Item": {
                "email": {"S": email}, "state": {"S": rng.choice(STATES)}, "city": {"S": rng.choice(CITIES)},
                "zipcode": {"S": f"{rng.randrange(100000):05d}"}, "active": {"BOOL": rng.random() < 0.8}}}}
        if email in keys or len(batch) == 25:
            dynamodb.batch_write_item(RequestItems={table: batch})
            batch, keys = [], set()
        batch.append(request)
        keys.add(email)
    if batch:
        dynamodb.batch_write_item(RequestItems={table: batch})
