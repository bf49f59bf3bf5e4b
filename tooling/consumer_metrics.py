"""The consumers' metrics over a recent window, read back from CloudWatch with one GetMetricData call.

The functions write them as EMF (chalicelib/observability/metrics.py): namespace METRICS_NAMESPACE,
dimension `consumer`. The operator needs `cloudwatch:GetMetricData` (an action with no resource type).
`ops status` and the local stack's `make demo` both show them (`consumers_table`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from rich.table import Table

from chalicelib.dead_letters import CONSUMERS
from chalicelib.observability.metrics import (
    AWS_CALLS,
    RECORDS_APPLIED,
    RECORDS_DEAD_LETTERED,
    RECORDS_IN,
    RETRIES,
    STREAM_LAG_MS,
)

STREAM_CONSUMERS = ("replication", "fanout", "orders")
SUMMED = (RECORDS_IN, RECORDS_APPLIED, RECORDS_DEAD_LETTERED, RETRIES, AWS_CALLS)


@dataclass(frozen=True)
class ConsumerWindow:
    """One consumer's metrics over the window; None where CloudWatch has no data (no invocation)."""

    consumer: str
    sums: Mapping[str, float | None]
    max_lag_ms: float | None

    @property
    def invoked(self) -> bool:
        return any(value is not None for value in self.sums.values())


def query_id(metric: str, consumer: str) -> str:
    """A GetMetricData query id (lower-case first letter, letters, digits and underscores)."""
    return f"q_{metric.lower()}_{consumer}"


def metric_queries(namespace: str, window: timedelta) -> list[dict[str, Any]]:
    """Every query of the consumers' table (pure): sums per consumer, and the maximum stream lag."""
    period = max(60, int(window.total_seconds()) // 60 * 60)  # one period covers the window
    queries = []
    for consumer in CONSUMERS:
        metrics = [(name, "Sum") for name in SUMMED]
        if consumer in STREAM_CONSUMERS:
            metrics.append((STREAM_LAG_MS, "Maximum"))
        for metric, stat in metrics:
            queries.append({
                "Id": query_id(metric, consumer),
                "MetricStat": {"Metric": {"Namespace": namespace, "MetricName": metric,
                                          "Dimensions": [{"Name": "consumer", "Value": consumer}]},
                               "Period": period, "Stat": stat},
                "ReturnData": True,
            })
    return queries


def windows_of(results: Sequence[Mapping[str, Any]]) -> list[ConsumerWindow]:
    """Per-consumer figures from GetMetricDataResults (pure): values summed, or the largest for the lag."""
    values: dict[str, list[float]] = {}
    for result in results:
        values.setdefault(str(result["Id"]), []).extend(float(v) for v in result.get("Values", []))

    def combined(metric: str, consumer: str, largest: bool = False) -> float | None:
        found = values.get(query_id(metric, consumer))
        if not found:
            return None
        return max(found) if largest else sum(found)

    return [ConsumerWindow(consumer, {metric: combined(metric, consumer) for metric in SUMMED},
                           combined(STREAM_LAG_MS, consumer, largest=True) if consumer in STREAM_CONSUMERS else None)
            for consumer in CONSUMERS]


def read_windows(cloudwatch: Any, namespace: str, now: datetime,
                 window: timedelta = timedelta(hours=1)) -> tuple[list[ConsumerWindow], int]:
    """The consumers' figures over `window` up to `now`, and the GetMetricData calls made (one, unless paged)."""
    request: dict[str, Any] = {"MetricDataQueries": metric_queries(namespace, window),
                               "StartTime": now - window, "EndTime": now, "ScanBy": "TimestampDescending"}
    results: list[Mapping[str, Any]] = []
    calls = 0
    while True:
        calls += 1
        answer = cloudwatch.get_metric_data(**request)
        results.extend(answer.get("MetricDataResults", []))
        if not answer.get("NextToken"):
            return windows_of(results), calls
        request["NextToken"] = answer["NextToken"]


def consumers_table(windows: Sequence[ConsumerWindow]) -> Table:
    """The consumers' last hour as a rich table: '-' where a consumer was not invoked (no data)."""
    table = Table(title="consumers, last hour (CloudWatch metrics)")
    for column in ("consumer", "records in", "applied", "dead-lettered", "retries", "AWS calls", "max lag"):
        table.add_column(column, justify="left" if column == "consumer" else "right")
    for window in windows:
        counts = [f"{window.sums[name]:,.0f}" if window.sums[name] is not None else "-" for name in SUMMED]
        lag = f"{window.max_lag_ms / 1000:,.1f} s" if window.max_lag_ms is not None else "-"
        table.add_row(window.consumer, *counts, lag)
    return table
