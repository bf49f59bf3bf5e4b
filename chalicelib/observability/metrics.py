"""Per-invocation consumer metrics as one CloudWatch Embedded Metric Format (EMF) document on stdout.

Lambda ships stdout to CloudWatch Logs, which turns an EMF line into metrics: no API call, no latency, no
`cloudwatch:PutMetricData` permission. The document is built by Powertools for AWS Lambda
(`EphemeralMetrics`: one metric set per instance, so parallel invocations in one process, as in the local
stack, never mix) and printed as one line. Metric names, units and the one dimension are the SPEC's.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TextIO

from chalicelib.config import DEFAULT_METRICS_NAMESPACE as DEFAULT_NAMESPACE

DIMENSION = "consumer"

RECORDS_IN = "RecordsIn"
RECORDS_APPLIED = "RecordsApplied"
RECORDS_DEAD_LETTERED = "RecordsDeadLettered"
RETRIES = "Retries"
AWS_CALLS = "AwsCalls"
STREAM_LAG_MS = "StreamLagMs"
COUNT_METRICS = (RECORDS_IN, RECORDS_APPLIED, RECORDS_DEAD_LETTERED, RETRIES, AWS_CALLS)


@dataclass(frozen=True)
class ConsumerMetrics:
    """What one consumer invocation did, summed over its batch."""

    records_in: int = 0
    applied: int = 0  # written, published, processed or stored
    dead_lettered: int = 0
    retries: int = 0
    aws_calls: int = 0
    oldest_created_at: datetime | None = None  # stream consumers: the oldest record's creation time

    def counts(self) -> dict[str, int]:
        """The Count metrics by SPEC name."""
        return {RECORDS_IN: self.records_in, RECORDS_APPLIED: self.applied,
                RECORDS_DEAD_LETTERED: self.dead_lettered, RETRIES: self.retries, AWS_CALLS: self.aws_calls}


def stream_lag_ms(oldest_created_at: datetime | None, now: datetime) -> int | None:
    """The invocation's time minus the oldest record's creation time, in ms (never negative: clocks drift)."""
    if oldest_created_at is None:
        return None
    return max(0, round((_utc(now) - _utc(oldest_created_at)).total_seconds() * 1000))


def emf_document(consumer: str, metrics: ConsumerMetrics, now: datetime,
                 namespace: str = DEFAULT_NAMESPACE) -> dict[str, Any]:
    """The EMF document of one invocation (pure): the counts, and StreamLagMs when the batch had creation times."""
    from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit  # on first use: see logs.json_formatter

    emf = EphemeralMetrics(namespace=namespace)
    # POWERTOOLS_SERVICE_NAME would add a `service` dimension: the SPEC's set is [["consumer"]].
    emf.service = None  # type: ignore[assignment]
    emf.add_dimension(DIMENSION, consumer)
    for name, value in metrics.counts().items():
        emf.add_metric(name=name, unit=MetricUnit.Count, value=value)
    lag = stream_lag_ms(metrics.oldest_created_at, now)
    if lag is not None:
        emf.add_metric(name=STREAM_LAG_MS, unit=MetricUnit.Milliseconds, value=lag)
    emf.set_timestamp(int(_utc(now).timestamp() * 1000))
    return dict(emf.serialize_metric_set())


def emit(consumer: str, metrics: ConsumerMetrics, now: datetime, namespace: str = DEFAULT_NAMESPACE,
         out: TextIO | None = None) -> dict[str, Any]:
    """Print the invocation's EMF document to stdout as one line, and return it."""
    document = emf_document(consumer, metrics, now, namespace)
    stream = out if out is not None else sys.stdout  # looked up now: the local stack captures it per invocation
    stream.write(json.dumps(document, separators=(",", ":")) + "\n")
    stream.flush()
    return document


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
