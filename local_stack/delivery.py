"""Lambda's event-source-mapping decisions as pure functions: when a batch is due, what a handler's
answer means, what is settled and what comes back, when to stop retrying.

Everything here works on plain values (ids, counts, seconds) so it is tested without AWS or threads.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any


class Result(Enum):
    """How one delivery ended, as Lambda's poller sees it."""

    OK = "ok"
    PARTIAL = "partial"  # batchItemFailures honoured: some items come back
    FAILED = "failed"  # the handler raised, or reported failures Lambda cannot map: the whole batch comes back


@dataclass(frozen=True)
class Outcome:
    """One delivery's result, the error text if it failed, and the ids reported as failed."""

    result: Result
    error: str = ""
    failed_ids: tuple[str, ...] = ()

    def describe(self) -> str:
        """`ok`, `raised ValueError: ...`, `2 item failure(s)`, for the delivery log line."""
        if self.result is Result.OK:
            return "ok"
        if self.result is Result.PARTIAL:
            return f"{len(self.failed_ids)} item failure(s) reported"
        return self.error


def outcome_of(response: Any, error: BaseException | None, item_ids: Sequence[str],
               report_failures: bool) -> Outcome:
    """Lambda's reading of a handler's return value (or exception) for a batch of `item_ids`.

    `batchItemFailures` counts only when the mapping has ReportBatchItemFailures on; then an identifier
    that is empty or not in the batch makes Lambda treat the whole batch as failed.
    """
    if error is not None:
        return Outcome(Result.FAILED, f"raised {type(error).__name__}: {error}")
    if not report_failures or not isinstance(response, Mapping):
        return Outcome(Result.OK)
    reported = response.get("batchItemFailures") or []
    if not isinstance(reported, list):
        return Outcome(Result.FAILED, "batchItemFailures is not a list: whole batch failed")
    failed: list[str] = []
    known = set(item_ids)
    for entry in reported:
        identifier = entry.get("itemIdentifier") if isinstance(entry, Mapping) else None
        if not identifier or identifier not in known:
            return Outcome(Result.FAILED, f"unknown itemIdentifier {identifier!r}: whole batch failed")
        failed.append(str(identifier))
    if not failed:
        return Outcome(Result.OK)
    return Outcome(Result.PARTIAL, failed_ids=tuple(dict.fromkeys(failed)))


def stream_settled(item_ids: Sequence[str], outcome: Outcome) -> int:
    """How many records from the head of a stream batch are done (the shard's checkpoint moves past them).

    A partial failure checkpoints just before the earliest failed record; stream order is never broken.
    """
    if outcome.result is Result.OK:
        return len(item_ids)
    if outcome.result is Result.FAILED:
        return 0
    failed = set(outcome.failed_ids)
    return next(i for i, identifier in enumerate(item_ids) if identifier in failed)


def queue_deletions(item_ids: Sequence[str], outcome: Outcome) -> list[str]:
    """Which messages of an SQS batch Lambda deletes; the rest return after their visibility timeout."""
    if outcome.result is Result.OK:
        return list(item_ids)
    if outcome.result is Result.FAILED:
        return []
    failed = set(outcome.failed_ids)
    return [identifier for identifier in item_ids if identifier not in failed]


def batch_due(buffered: int, batch_size: int, waited: float, window: float) -> bool:
    """Lambda invokes when the batch is full or the batching window since the first record has passed."""
    return buffered >= batch_size or (buffered > 0 and waited >= window)


@dataclass(frozen=True)
class RetryPolicy:
    """Retries of a failing stream batch: exponential delays, then give up after `max_retry_attempts`.

    Lambda's default for streams is to retry until the records expire (24 h), blocking the shard; here the
    default is a cap, like a mapping with MaximumRetryAttempts set. -1 means retry forever (Lambda's default).
    """

    max_retry_attempts: int = 10
    base: float = 0.1
    cap: float = 2.0

    def delay(self, failures: int) -> float:
        """Seconds to wait before retry number `failures` (1 = the first retry)."""
        return min(self.cap, self.base * 2 ** max(0, failures - 1))

    def exhausted(self, failures: int) -> bool:
        """True when a batch that has failed `failures` times is not retried again."""
        return self.max_retry_attempts >= 0 and failures > self.max_retry_attempts
