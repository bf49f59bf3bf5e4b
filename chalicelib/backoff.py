"""Exponential backoff with full jitter, with an injectable sleeper and random source for tests."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Backoff:
    """Delays of `uniform(0, min(cap, base * 2**attempt))` seconds (AWS "full jitter")."""

    max_attempts: int = 8
    base: float = 0.05
    cap: float = 2.0
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)
    rand: Callable[[], float] = field(default=random.random, repr=False)
    slept: list[float] = field(default_factory=list, repr=False)

    def delay(self, attempt: int) -> float:
        """The jittered delay before retry number `attempt` (1 = the first retry)."""
        return self.rand() * min(self.cap, self.base * (2 ** (attempt - 1)))

    def wait(self, attempt: int) -> None:
        """Sleep before retry number `attempt`, recording the delay."""
        seconds = self.delay(attempt)
        self.slept.append(seconds)
        self.sleep(seconds)


def no_sleep(_seconds: float) -> None:
    """A sleeper for tests: retries happen at once."""
