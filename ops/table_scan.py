"""Reading whole tables: parallel segmented Scan, exact and approximate item counts.

Each segment is scanned page by page from an optional start key, so a caller can checkpoint the
`LastEvaluatedKey` of every page it has finished and resume there. Requests go through the one retry
primitive (`chalicelib.retry`): throttling, 5xx and connection trouble are retried with backoff (on top of
botocore's own retries), anything else is raised at once as botocore raised it; `calls` counts Scan/DescribeTable
requests.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from chalicelib.backoff import Backoff
from chalicelib.retry import CallStats, retry_request
from chalicelib.stream.images import plain_item


@dataclass(frozen=True)
class Page:
    """One Scan page of one segment: plain items and the typed key to continue after it (None = end)."""

    segment: int
    items: list[dict[str, Any]]
    last_key: dict[str, Any] | None


class TableScanner:
    """Scans one table; thread-safe (one boto3 client is safe to share between threads)."""

    def __init__(self, dynamodb: Any, table: str, page_size: int | None = None, consistent: bool = False,
                 backoff: Backoff | None = None):
        self._dynamodb = dynamodb
        self.table = table
        self._page_size = page_size
        self._consistent = consistent
        self._backoff = backoff or Backoff(max_attempts=8)
        self._lock = threading.Lock()
        self.calls = 0

    def pages(self, segment: int = 0, total_segments: int = 1,
              start_key: dict[str, Any] | None = None) -> Iterator[Page]:
        """Pages of `segment` of `total_segments`, starting after `start_key`."""
        key = start_key
        while True:
            params: dict[str, Any] = {"TableName": self.table, "ConsistentRead": self._consistent}
            if total_segments > 1:
                params.update(Segment=segment, TotalSegments=total_segments)
            if self._page_size:
                params["Limit"] = self._page_size
            if key:
                params["ExclusiveStartKey"] = key
            answer = self._request(self._dynamodb.scan, params)
            key = answer.get("LastEvaluatedKey")
            yield Page(segment, [plain_item(item) for item in answer.get("Items", [])], key)
            if not key:
                return

    def count(self) -> int:
        """The exact item count (Scan with Select=COUNT: reads the whole table, costs its read capacity)."""
        total, key = 0, None
        while True:
            params: dict[str, Any] = {"TableName": self.table, "Select": "COUNT"}
            if key:
                params["ExclusiveStartKey"] = key
            answer = self._request(self._dynamodb.scan, params)
            total += int(answer.get("Count", 0))
            key = answer.get("LastEvaluatedKey")
            if not key:
                return total

    def describe(self) -> dict[str, Any]:
        """DescribeTable's `Table`: ItemCount (free, but AWS refreshes it only about every six hours),
        CreationDateTime (a table deleted and created again has a new one)."""
        return dict(self._request(self._dynamodb.describe_table, {"TableName": self.table})["Table"])

    def approximate_count(self) -> int:
        """DescribeTable's ItemCount."""
        return int(self.describe().get("ItemCount", 0))

    def _request(self, operation: Callable[..., Any], params: dict[str, Any]) -> Any:
        stats = CallStats()  # this request's own: the scanner is shared by the segment threads
        try:
            return retry_request(lambda: operation(**params), self._backoff, stats)
        finally:
            with self._lock:
                self.calls += stats.calls
