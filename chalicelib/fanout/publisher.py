"""EventBridge PutEvents adapter: packed calls, only failed entries retried with backoff, the rest reported.

PutEvents answers 200 even when some entries failed (FailedEntryCount, per-entry ErrorCode), which
botocore's retries never see; this adapter resends exactly those entries, with exponential backoff and
jitter, up to the backoff's `max_attempts`. A whole call that is throttled or hits a service error is
resent too; errors no retry can fix (a bus that does not exist, access denied, a malformed entry) stop
at once. `calls` counts PutEvents requests for tests and benchmarks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError, ParamValidationError

from chalicelib.backoff import Backoff
from chalicelib.fanout.events import FanoutEntry, pack

# Per-entry codes EventBridge documents as transient; every other ErrorCode is a rejection.
RETRYABLE_ENTRY_CODES = frozenset({"ThrottlingException", "InternalFailure", "InternalException"})
# Whole-call error codes worth another attempt (5xx answers are retried whatever their code).
RETRYABLE_CALL_CODES = frozenset({
    "ThrottlingException",
    "Throttling",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "InternalFailure",
    "InternalException",
    "InternalServerError",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "RequestTimeout",
    "RequestTimeoutException",
})


@dataclass(frozen=True)
class PublishFailure:
    """An entry that was not published: the last error, attempts made, and whether retrying could help."""

    entry: FanoutEntry
    error: str
    attempts: int
    retryable: bool


@dataclass(frozen=True)
class _Failed:
    entry: FanoutEntry
    error: str
    retryable: bool


class EventPublisher:
    """Publishes FanoutEntries to EventBridge, reporting the ones that could not be published."""

    def __init__(self, events: Any, bus_name: str, backoff: Backoff | None = None):
        self._events = events
        self.bus_name = bus_name
        self._backoff = backoff or Backoff(max_attempts=3)
        self.calls = 0
        self.published = 0

    @property
    def max_attempts(self) -> int:
        """Attempts per entry before it is reported as failed."""
        return self._backoff.max_attempts

    def publish(self, entries: Sequence[FanoutEntry]) -> list[PublishFailure]:
        """Publish every entry; return those that still failed (each entry is sent until it succeeds once)."""
        pending: list[tuple[FanoutEntry, str]] = [(entry, "") for entry in entries]
        failures: list[PublishFailure] = []
        attempt = 0
        while pending and attempt < self._backoff.max_attempts:
            attempt += 1
            if attempt > 1:
                self._backoff.wait(attempt - 1)
            retry: list[tuple[FanoutEntry, str]] = []
            for call in pack(entry for entry, _ in pending):
                for failed in self._send(call):
                    if failed.retryable:
                        retry.append((failed.entry, failed.error))
                    else:
                        failures.append(PublishFailure(failed.entry, failed.error, attempt, retryable=False))
            pending = retry
        failures.extend(PublishFailure(entry, error, attempt, retryable=True) for entry, error in pending)
        return failures

    def _send(self, call: list[FanoutEntry]) -> list[_Failed]:
        self.calls += 1
        try:
            answer = self._events.put_events(
                Entries=[{**entry.entry, "EventBusName": self.bus_name} for entry in call]
            )
        except ClientError as error:
            details = error.response.get("Error", {})
            code = str(details.get("Code", ""))
            status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
            text = f"{code}: {details.get('Message', '')}"
            retryable = code in RETRYABLE_CALL_CODES or status >= 500
            return [_Failed(entry, text, retryable) for entry in call]
        except ParamValidationError as error:  # the request itself is wrong: sending it again changes nothing
            return [_Failed(entry, f"ParamValidationError: {error}", False) for entry in call]
        except BotoCoreError as error:  # connection trouble or a timeout: worth another attempt
            return [_Failed(entry, f"{type(error).__name__}: {error}", True) for entry in call]
        if not answer.get("FailedEntryCount"):
            self.published += len(call)
            return []
        results = list(answer.get("Entries") or [])
        failed: list[_Failed] = []
        for index, entry in enumerate(call):
            # Answers pair with entries by position; a missing answer is treated as a transient failure.
            result = results[index] if index < len(results) else {"ErrorCode": "InternalFailure",
                                                                   "ErrorMessage": "no result for entry"}
            entry_code = result.get("ErrorCode")
            if entry_code:
                failed.append(_Failed(entry, f"{entry_code}: {result.get('ErrorMessage', '')}",
                                      entry_code in RETRYABLE_ENTRY_CODES))
            else:
                self.published += 1
        return failed
