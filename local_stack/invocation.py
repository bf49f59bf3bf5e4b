"""Calling a handler the way Lambda does — `handler(event, context)` — and logging each delivery."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from chalice.local import LambdaContext

from local_stack.delivery import Outcome, Result, outcome_of
from local_stack.function_output import MetricsForwarder, capture

logger = logging.getLogger("local_stack.delivery")

FAIL_ONCE_VARIABLE = "LOCAL_STACK_FAIL_ONCE"
DEFAULT_TIMEOUT_MS = 60_000
DEFAULT_MEMORY_MB = 128


class InjectedFault(RuntimeError):
    """Raised instead of a handler's first delivery when LOCAL_STACK_FAIL_ONCE names it (tests only)."""


@dataclass
class FaultHook:
    """Handler names whose next delivery fails before the handler runs (once each)."""

    pending: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def from_names(cls, names: str) -> FaultHook:
        """`"replicate_users,fanout_users"` → a hook failing each of them once."""
        return cls({name.strip() for name in names.split(",") if name.strip()})

    def check(self, name: str) -> None:
        """Raise InjectedFault the first time `name` is delivered to."""
        with self._lock:
            if name not in self.pending:
                return
            self.pending.discard(name)
        raise InjectedFault(f"{FAIL_ONCE_VARIABLE} makes {name} fail its first delivery")


@dataclass(frozen=True)
class Delivery:
    """What the poller needs back from one invocation."""

    outcome: Outcome
    response: Any
    seconds: float


class Invoker:
    """One function: calls it with a Lambda event and context and logs one line per delivery."""

    def __init__(self, name: str, handler: Callable[[dict[str, Any], Any], Any], report_failures: bool = False,
                 faults: FaultHook | None = None, timeout_ms: int = DEFAULT_TIMEOUT_MS,
                 clock: Callable[[], float] = time.monotonic, function_name: str | None = None,
                 memory_mb: int = DEFAULT_MEMORY_MB, metrics: MetricsForwarder | None = None):
        self.name = name
        self.function_name = function_name or name  # as deployed: <app>-<stage>-<name>
        self._memory_mb = memory_mb
        self.report_failures = report_failures
        self.invocations = 0
        self._handler = handler
        self._faults = faults or FaultHook()
        self._timeout_ms = timeout_ms
        self._clock = clock
        self._last_error = ""
        self._metrics = metrics  # where the invocation's EMF documents go (the emulator's CloudWatch)

    def invoke(self, event: dict[str, Any], item_ids: Sequence[str], source: str, note: str = "") -> Delivery:
        """Deliver `event` (whose items are `item_ids`) and read the answer as Lambda would."""
        self.invocations += 1
        started = self._clock()
        response: Any = None
        error: BaseException | None = None
        with capture(self.name) as output:  # its stdout: log lines rendered, EMF documents kept
            try:
                self._faults.check(self.name)
                response = self._handler(event, LambdaContext(self.function_name, self._memory_mb, self._timeout_ms))
            except Exception as raised:  # a handler's exception is an outcome, exactly as Lambda treats it
                error = raised
        seconds = self._clock() - started
        if self._metrics is not None and output.documents:
            self._metrics.forward(self.name, output.documents)
        outcome = outcome_of(response, error, item_ids, self.report_failures)
        if error is None and seconds * 1000 > self._timeout_ms:
            # Lambda would have stopped the function: the invocation failed, whatever it did meanwhile.
            outcome = Outcome(Result.FAILED, f"Task timed out after {self._timeout_ms / 1000:.2f} seconds")
        level = logging.INFO if error is None else logging.WARNING
        # A traceback once per distinct error, not on every retry of the same failure.
        error_text = repr(error) if error is not None else ""
        traceback = error is not None and not isinstance(error, InjectedFault) and error_text != self._last_error
        self._last_error = error_text
        logger.log(level, "%s ← %s: %d record(s) %s %s in %.0f ms%s", self.name, source, len(item_ids),
                   _span(item_ids), outcome.describe(), seconds * 1000, f" ({note})" if note else "",
                   exc_info=error if traceback else None)
        return Delivery(outcome, response, seconds)


def _span(item_ids: Iterable[str]) -> str:
    ids = list(item_ids)
    if not ids:
        return "[]"
    if len(ids) == 1:
        return f"[{_short(ids[0])}]"
    return f"[{_short(ids[0])}..{_short(ids[-1])}]"


def _short(identifier: str) -> str:
    return identifier if len(identifier) <= 12 else "…" + identifier[-8:]
