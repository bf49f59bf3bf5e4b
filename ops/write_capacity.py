"""Write capacity: what a write costs (DynamoDB's item size rules) and a rate limit in units per second.

`backfill --max-wcu N` keeps its writes under N write capacity units per second, so a copy of a large
table never starves production traffic of the table's capacity. A write costs 1 WCU per started KB of
the item (a delete: of the item deleted); a conditional write costs the same whether its condition holds
or not. Hand-written, not a library: the size rules are DynamoDB's own (no maintained package follows
them), and the bucket is a dozen lines that need an injectable clock so tests never wait.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any, Protocol

WCU_BYTES = 1024


def value_size(value: Any) -> int:
    """Bytes DynamoDB counts for one plain value (as `plain_item` gives them)."""
    if isinstance(value, bool) or value is None:
        return 1
    if isinstance(value, str):
        return len(value.encode("utf-8"))
    if isinstance(value, (bytes, bytearray)):
        return len(value)
    if isinstance(value, (int, Decimal)):
        digits = Decimal(value).normalize().as_tuple().digits  # leading and trailing zeros are not stored
        return math.ceil(len(digits) / 2) + 1
    if isinstance(value, (set, frozenset)):
        return sum(value_size(element) for element in value)
    if isinstance(value, list):
        return 3 + sum(1 + value_size(element) for element in value)
    if isinstance(value, Mapping):
        return 3 + sum(1 + len(str(name).encode("utf-8")) + value_size(inner) for name, inner in value.items())
    raise TypeError(f"not a DynamoDB value: {type(value).__name__}")


def item_size(item: Mapping[str, Any]) -> int:
    """An item's size: its attribute names and values."""
    return sum(len(name.encode("utf-8")) + value_size(value) for name, value in item.items())


def write_units(item: Mapping[str, Any] | None) -> int:
    """WCUs of writing (or deleting) `item`: 1 per started KB, at least 1 (an unknown item counts 1)."""
    return max(1, math.ceil(item_size(item) / WCU_BYTES)) if item else 1


class WriteLimiter(Protocol):
    """Blocks a writer until `units` may be spent."""

    def take(self, units: float) -> float: ...


class TokenBucket:
    """At most `rate` units per second on average, in bursts of at most `burst` (default: one second's worth).

    Thread-safe and first come, first served: `take` reserves the units at once (the bucket may go below
    zero) and sleeps until the bucket has refilled to where the reservation is paid, so the segment threads
    sharing a bucket together stay under the rate. A write larger than the burst still goes, after its wait.
    """

    def __init__(self, rate: float, burst: float | None = None, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        if rate <= 0:
            raise ValueError(f"rate must be positive, got {rate}")
        self.rate = rate
        self.burst = burst if burst is not None else rate
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = self.burst
        self._updated = clock()

    def reserve(self, units: float) -> float:
        """Spend `units` now; the seconds to wait before using them (0 when the bucket held them)."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
            self._updated = now
            self._tokens -= units
            return max(0.0, -self._tokens / self.rate)

    def take(self, units: float) -> float:
        """Reserve `units` and sleep until they are due; the seconds slept."""
        wait = self.reserve(units)
        if wait > 0:
            self._sleep(wait)
        return wait
