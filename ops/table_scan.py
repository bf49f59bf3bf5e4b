"""Reading whole tables: parallel segmented Scan, exact and approximate item counts.

Each segment is scanned page by page from an optional start key, so a caller can checkpoint the
`LastEvaluatedKey` of every page it has finished and resume there. Throttling is retried with backoff
(on top of botocore's own retries); `calls` counts Scan/DescribeTable requests.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.backoff import Backoff
from chalicelib.batch_writer import RETRYABLE_CODES
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
        last: BaseException | None = None
        for attempt in range(1, self._backoff.max_attempts + 1):
            if attempt > 1:
                self._backoff.wait(attempt - 1)
            with self._lock:
                self.calls += 1
            try:
                return operation(**params)
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") not in RETRYABLE_CODES:
                    raise
                last = error
            except BotoCoreError as error:
                last = error
        assert last is not None
        raise last
