"""The one retry primitive every adapter uses, in two shapes.

- `retry_call(request, backoff, stats)`: one request (UpdateItem, GetItem, PutObject, ...), sent again
  with backoff while it fails retryably; `GaveUp` (the Failure and the attempts made) otherwise.
  `retry_request` is the same for callers that handle botocore's errors: it raises the last one as it came.
- `retry_pending(items, send, backoff, stats, requests=...)`: a batch. `requests` groups the pending
  items into requests (≤ 25 writes, ≤ 10 entries within a size, ...); `send` makes one request and
  returns the items it did not take, each with its Failure (UnprocessedItems, failed entries). Only
  what is still pending is sent again, with backoff.

Both follow the fault model (`chalicelib.faults`): retryable failures are retried up to the backoff's
`max_attempts`; an item's fault is never retried, and a whole request refused for an item's fault is
split in halves until the refused items stand alone (their neighbours are sent in the same attempt); a
systemic failure is never retried and never split. `stats` counts requests and retries for the metrics
(`AwsCalls`, `Retries`): one call per request made here (botocore's own HTTP retries of a throttled
request happen inside that call and are not counted).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.backoff import Backoff
from chalicelib.faults import Failure, Fault, classify


@dataclass
class CallStats:
    """AWS requests an adapter made, and how many of them were retries."""

    calls: int = 0
    retries: int = 0

    def copy(self) -> CallStats:
        """A snapshot, to count one invocation's share (`stats - before`)."""
        return replace(self)

    def __sub__(self, earlier: CallStats) -> CallStats:
        return CallStats(self.calls - earlier.calls, self.retries - earlier.retries)

    def __add__(self, other: CallStats) -> CallStats:
        return CallStats(self.calls + other.calls, self.retries + other.retries)


class GaveUp(Exception):
    """A request that failed for good: not retryable, or still failing after every attempt."""

    def __init__(self, failure: Failure, attempts: int):
        super().__init__(f"{failure.text} (after {attempts} attempt(s))")
        self.failure = failure
        self.attempts = attempts


@dataclass(frozen=True)
class Failed[T]:
    """An item of a batch that was given up: the last Failure, the attempts made on it, and the botocore
    error that failed its whole request, when one did (for a caller that must raise it as it came)."""

    item: T
    failure: Failure
    attempts: int
    error: BaseException | None = None


def retry_call[R](request: Callable[[], R], backoff: Backoff, stats: CallStats) -> R:
    """`request()`, sent again after a retryable failure (up to `backoff.max_attempts` in all).

    Raises GaveUp (from the botocore error) when the failure is not retryable or the attempts ran out.
    """
    attempt = 1
    while True:
        stats.calls += 1
        try:
            return request()
        except (ClientError, BotoCoreError) as error:
            failure = classify(error)
            if failure.fault is not Fault.RETRYABLE or attempt >= backoff.max_attempts:
                raise GaveUp(failure, attempt) from error
        backoff.wait(attempt)
        attempt += 1
        stats.retries += 1


def retry_request[R](request: Callable[[], R], backoff: Backoff, stats: CallStats) -> R:
    """`retry_call`, raising the botocore error of the last attempt as botocore raised it (operator tools and
    readers whose callers name or catch botocore's errors)."""
    try:
        return retry_call(request, backoff, stats)
    except GaveUp as gave_up:
        error = gave_up.__cause__
        assert error is not None  # retry_call always raises GaveUp from the botocore error
        raise error from None


def one_request[T](items: list[T]) -> list[list[T]]:
    """All pending items in one request."""
    return [items]


def retry_pending[T](items: Sequence[T], send: Callable[[list[T]], Sequence[tuple[T, Failure]]],
                  backoff: Backoff, stats: CallStats,
                  requests: Callable[[list[T]], list[list[T]]] = one_request) -> list[Failed[T]]:
    """Send every item, retrying only what is still pending; return the items given up, in order of giving up.

    `send(request_items)` makes one request. It returns the items the request did not take, with why, or
    raises the botocore error that failed the whole request (classified here).
    """
    pending = list(items)
    given_up: list[Failed[T]] = []
    attempt = 0
    while pending:
        attempt += 1
        if attempt > 1:
            backoff.wait(attempt - 1)
        retry: list[T] = []
        queue = deque(requests(pending))
        while queue:
            request = queue.popleft()
            stats.calls += 1
            stats.retries += attempt > 1
            error: BaseException | None = None
            try:
                left = list(send(request))
            except (ClientError, BotoCoreError) as raised:
                failure = classify(raised)
                if failure.fault is Fault.ITEM and len(request) > 1:
                    middle = len(request) // 2  # isolate the refused items; their neighbours go on
                    queue.extendleft([request[middle:], request[:middle]])
                    continue
                left, error = [(item, failure) for item in request], raised
            for item, failure in left:
                if failure.fault is Fault.RETRYABLE and attempt < backoff.max_attempts:
                    retry.append(item)
                else:
                    given_up.append(Failed(item, failure, attempt, error))
        pending = retry
    return given_up
