"""EventBridge PutEvents adapter: packed calls through the retry primitive, what was not published reported.

PutEvents answers 200 even when some entries failed (FailedEntryCount, per-entry ErrorCode), which
botocore's retries never see; this adapter resends exactly the entries that failed retryably
(`ThrottlingException`, `InternalFailure`), with exponential backoff and jitter, up to the backoff's
`max_attempts`. A whole call that is throttled or hits a service error is resent too. An entry EventBridge
rejects (`InvalidArgument`, `MalformedDetail`) is the item's fault: reported at once. A systemic refusal (a
bus that does not exist, access denied) is reported for every entry of the call, never retried or split:
one call per packed request. `stats` counts PutEvents requests and retries.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from chalicelib.backoff import Backoff
from chalicelib.fanout.events import DEFAULT_MAX_BYTES, FanoutEntry, pack
from chalicelib.faults import Failure, entry_failure
from chalicelib.retry import CallStats, retry_pending


@dataclass(frozen=True)
class PublishFailure:
    """An entry that was not published: why, and the attempts made on it."""

    entry: FanoutEntry
    failure: Failure
    attempts: int


class EventPublisher:
    """Publishes FanoutEntries to EventBridge, reporting the ones that could not be published."""

    def __init__(self, events: Any, bus_name: str, backoff: Backoff | None = None,
                 max_bytes: int = DEFAULT_MAX_BYTES):
        self._events = events
        self.bus_name = bus_name
        self._backoff = backoff or Backoff(max_attempts=3)
        self._max_bytes = max_bytes
        self.stats = CallStats()
        self.published = 0

    @property
    def calls(self) -> int:
        """PutEvents requests made so far."""
        return self.stats.calls

    @property
    def max_attempts(self) -> int:
        """Attempts per entry before it is reported as failed."""
        return self._backoff.max_attempts

    def publish(self, entries: Sequence[FanoutEntry]) -> list[PublishFailure]:
        """Publish every entry; return those that were not published (each is sent until it succeeds once)."""
        given_up = retry_pending(entries, self._send, self._backoff, self.stats,
                                 requests=lambda pending: pack(pending, self._max_bytes))
        return [PublishFailure(failed.item, failed.failure, failed.attempts) for failed in given_up]

    def _send(self, call: list[FanoutEntry]) -> list[tuple[FanoutEntry, Failure]]:
        answer = self._events.put_events(Entries=[{**entry.entry, "EventBusName": self.bus_name} for entry in call])
        if not answer.get("FailedEntryCount"):
            self.published += len(call)
            return []
        results = list(answer.get("Entries") or [])
        failed: list[tuple[FanoutEntry, Failure]] = []
        for index, entry in enumerate(call):
            # Answers pair with entries by position; a missing answer is treated as a transient failure.
            result = results[index] if index < len(results) else {"ErrorCode": "InternalFailure",
                                                                   "ErrorMessage": "no result for entry"}
            code = result.get("ErrorCode")
            if code:
                failed.append((entry, entry_failure(str(code), str(result.get("ErrorMessage", "")), "PutEvents")))
            else:
                self.published += 1
        return failed
