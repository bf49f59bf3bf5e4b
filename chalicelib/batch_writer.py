"""BatchWriteItem with what boto3's own `batch_writer` leaves out.

boto3's `Table.batch_writer()` resends UnprocessedItems at once, with no backoff and no limit, and
gives no way to learn which writes never landed. This adapter coalesces writes per key (BatchWriteItem
rejects a request that touches one key twice), sends at most 25 per call, and goes through the retry
primitive (`chalicelib.retry`): UnprocessedItems and throttled calls are retried with backoff and jitter;
a request DynamoDB refuses for an item's fault (a ValidationException: one bad item fails all 25, a key
too long, an item too large) is split until the refused writes stand alone, so their neighbours still
land; a systemic refusal (access denied, no such table) is neither retried nor split: each request is made
once. It returns what did not land, with the Failure, so the caller can dead-letter or retry it.
`stats` counts BatchWriteItem requests and retries.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from chalicelib.backoff import Backoff
from chalicelib.faults import UNPROCESSED, Failure
from chalicelib.retry import CallStats, retry_pending
from chalicelib.stream.images import typed_item

MAX_BATCH = 25

KeyIdentity = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class WriteOp:
    """One put or delete on one key, in the low-level client's typed shape."""

    identity: KeyIdentity
    request: dict[str, Any]

    @classmethod
    def put(cls, item: Mapping[str, Any], key_names: Sequence[str]) -> WriteOp:
        """Put `item` (plain values)."""
        typed = typed_item(item)
        return cls(_identity(typed, key_names), {"PutRequest": {"Item": typed}})

    @classmethod
    def delete(cls, key: Mapping[str, Any], key_names: Sequence[str]) -> WriteOp:
        """Delete the item with primary key `key` (plain values)."""
        typed = typed_item({name: key[name] for name in key_names})
        return cls(_identity(typed, key_names), {"DeleteRequest": {"Key": typed}})

    @property
    def is_delete(self) -> bool:
        """True for a DeleteRequest."""
        return "DeleteRequest" in self.request


@dataclass(frozen=True)
class WriteFailure:
    """A write that did not land: why, and the attempts made on it."""

    op: WriteOp
    failure: Failure
    attempts: int


def coalesce(ops: Sequence[WriteOp]) -> list[WriteOp]:
    """The last write per key, in the order those last writes were made."""
    last: dict[KeyIdentity, WriteOp] = {}
    for op in ops:
        last.pop(op.identity, None)  # re-insert so order follows the latest write
        last[op.identity] = op
    return list(last.values())


class BatchWriter:
    """Writes WriteOps to one table through BatchWriteItem, reporting what could not be written."""

    def __init__(self, dynamodb: Any, table_name: str, key_names: Sequence[str], backoff: Backoff | None = None):
        self._dynamodb = dynamodb
        self.table_name = table_name
        self.key_names = tuple(key_names)
        self._backoff = backoff or Backoff(max_attempts=8)
        self.stats = CallStats()

    @property
    def calls(self) -> int:
        """BatchWriteItem requests made so far."""
        return self.stats.calls

    def write(self, ops: Sequence[WriteOp]) -> list[WriteFailure]:
        """Apply `ops` (coalesced per key); return the writes that did not land."""
        pending = coalesce(ops)
        by_identity = {op.identity: op for op in pending}

        def send(chunk: list[WriteOp]) -> list[tuple[WriteOp, Failure]]:
            answer = self._dynamodb.batch_write_item(RequestItems={self.table_name: [op.request for op in chunk]})
            left = answer.get("UnprocessedItems", {}).get(self.table_name, [])
            return [(by_identity[_request_identity(request, self.key_names)], UNPROCESSED) for request in left]

        given_up = retry_pending(pending, send, self._backoff, self.stats, requests=lambda items: [
            items[start:start + MAX_BATCH] for start in range(0, len(items), MAX_BATCH)])
        return [WriteFailure(failed.item, failed.failure, failed.attempts) for failed in given_up]


def _identity(typed_key_or_item: Mapping[str, Any], key_names: Sequence[str]) -> KeyIdentity:
    try:
        return tuple((name, _key_text(typed_key_or_item[name])) for name in key_names)
    except KeyError as missing:
        raise ValueError(f"item has no key attribute {missing}") from None


def _key_text(typed: Any) -> str:
    # A string key (most keys) without json.dumps; its text never starts with "{", so it cannot meet another type's.
    if type(typed) is dict and len(typed) == 1 and type(text := typed.get("S")) is str:
        return "S:" + text
    return json.dumps(typed, sort_keys=True, default=repr)


def _request_identity(request: Mapping[str, Any], key_names: Sequence[str]) -> KeyIdentity:
    if "PutRequest" in request:
        return _identity(request["PutRequest"]["Item"], key_names)
    return _identity(request["DeleteRequest"]["Key"], key_names)
