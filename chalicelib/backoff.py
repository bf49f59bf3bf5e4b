"""The delay policy of every retry: exponential backoff with full jitter, sleeper and random source injectable.

`chalicelib.retry` decides *whether* to retry (by the fault classifier); this decides *how long* to wait.
Tests inject a sleeper that records the delays (or `no_sleep`).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Backoff:
    """At most `max_attempts` attempts; before retry n, `uniform(0, min(cap, base * 2**(n-1)))` seconds
    (AWS "full jitter")."""

    max_attempts: int = 8
    base: float = 0.05
    cap: float = 2.0
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)
    rand: Callable[[], float] = field(default=random.random, repr=False)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {self.max_attempts}")

    def delay(self, retry: int) -> float:
        """The jittered delay before retry number `retry` (1 = the first retry)."""
        return self.rand() * min(self.cap, self.base * (2 ** (retry - 1)))

    def wait(self, retry: int) -> None:
        """Sleep before retry number `retry`."""
        self.sleep(self.delay(retry))


def no_sleep(_seconds: float) -> None:
    """A sleeper for tests: retries happen at once."""
