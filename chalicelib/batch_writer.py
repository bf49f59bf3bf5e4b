"""BatchWriteItem with what boto3's own `batch_writer` leaves out.

boto3's `Table.batch_writer()` resends UnprocessedItems at once, with no backoff and no limit, and
gives no way to learn which writes never landed. This adapter coalesces writes per key (BatchWriteItem
rejects a request that touches one key twice), sends at most 25 per call, retries UnprocessedItems and
throttled calls with exponential backoff and jitter, isolates the writes DynamoDB refuses outright (a
ValidationException fails the whole request: the request is split until the refused writes stand alone,
so their neighbours still land), and returns what still failed so the caller can dead-letter or retry
it. `calls` counts BatchWriteItem requests for tests and benchmarks.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.backoff import Backoff
from chalicelib.stream.images import typed_item

MAX_BATCH = 25
RETRYABLE_CODES = frozenset({
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "InternalServerError",
    "ServiceUnavailable",
    "TransactionInProgressException",
})

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
    """A write that did not land after every attempt."""

    op: WriteOp
    error: str
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
        self.calls = 0

    def write(self, ops: Sequence[WriteOp]) -> list[WriteFailure]:
        """Apply `ops` (coalesced per key); return the writes that still failed."""
        pending = coalesce(ops)
        by_identity = {op.identity: op for op in pending}
        failures: list[WriteFailure] = []
        last_error = ""
        attempt = 0
        while pending and attempt < self._backoff.max_attempts:
            attempt += 1
            if attempt > 1:
                self._backoff.wait(attempt - 1)
            retry: list[WriteOp] = []
            for start in range(0, len(pending), MAX_BATCH):
                chunk = pending[start:start + MAX_BATCH]
                unprocessed, error, refused = self._send_isolating(chunk, by_identity)
                failures.extend(WriteFailure(op, refusal, attempt) for op, refusal in refused)
                retry.extend(unprocessed)
                if error:
                    last_error = error
            pending = retry
        failures.extend(
            WriteFailure(op, last_error or "UnprocessedItems after retries", attempt) for op in pending
        )
        return failures

    def _send_isolating(
        self, chunk: list[WriteOp], by_identity: dict[KeyIdentity, WriteOp]
    ) -> tuple[list[WriteOp], str, list[tuple[WriteOp, str]]]:
        """Send `chunk`; when DynamoDB refuses the whole request (one bad item fails all 25: a key too long,
        an item too large), split it in halves until the refused writes are alone, so their neighbours land.
        Returns (unprocessed, last retryable error, refused writes with the error)."""
        outcome = self._send(chunk, by_identity)
        if not isinstance(outcome, _Fatal):
            unprocessed, error = outcome
            return unprocessed, error, []
        if len(chunk) == 1:
            return [], "", [(chunk[0], outcome.error)]
        middle = len(chunk) // 2
        first = self._send_isolating(chunk[:middle], by_identity)
        second = self._send_isolating(chunk[middle:], by_identity)
        return first[0] + second[0], second[1] or first[1], first[2] + second[2]

    def _send(
        self, chunk: list[WriteOp], by_identity: dict[KeyIdentity, WriteOp]
    ) -> tuple[list[WriteOp], str] | _Fatal:
        self.calls += 1
        try:
            answer = self._dynamodb.batch_write_item(
                RequestItems={self.table_name: [op.request for op in chunk]}
            )
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            message = f"{code}: {error.response.get('Error', {}).get('Message', '')}"
            if code in RETRYABLE_CODES:
                return chunk, message
            return _Fatal(message)
        except BotoCoreError as error:  # connection trouble: worth another attempt
            return chunk, f"{type(error).__name__}: {error}"
        left = answer.get("UnprocessedItems", {}).get(self.table_name, [])
        unprocessed = [by_identity[_request_identity(request, self.key_names)] for request in left]
        return unprocessed, "UnprocessedItems after retries" if unprocessed else ""


@dataclass(frozen=True)
class _Fatal:
    error: str


def _identity(typed_key_or_item: Mapping[str, Any], key_names: Sequence[str]) -> KeyIdentity:
    try:
        return tuple((name, json.dumps(typed_key_or_item[name], sort_keys=True, default=repr)) for name in key_names)
    except KeyError as missing:
        raise ValueError(f"item has no key attribute {missing}") from None


def _request_identity(request: Mapping[str, Any], key_names: Sequence[str]) -> KeyIdentity:
    if "PutRequest" in request:
        return _identity(request["PutRequest"]["Item"], key_names)
    return _identity(request["DeleteRequest"]["Key"], key_names)
