"""status: the consumers' last hour from CloudWatch (one GetMetricData call), against moto."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from chalicelib import clients
from chalicelib.observability.metrics import ConsumerMetrics, emf_document
from local_stack.function_output import metric_data
from tests.ops.ops_support import RunOps
from tests.support.faults import CallCounter, FaultyClient, client_error
from tests.support.resources import StageResources
from tooling.consumer_metrics import metric_queries, read_windows, windows_of

NOW = datetime.now(UTC)


def put_invocation(consumer: str, metrics: ConsumerMetrics, at: datetime, namespace: str = "stream-pipeline") -> None:
    """What CloudWatch Logs makes of one invocation's EMF line (the local stack's forwarder does the same)."""
    cloudwatch = boto3.client("cloudwatch")
    for name, data in metric_data(emf_document(consumer, metrics, at, namespace)):
        cloudwatch.put_metric_data(Namespace=name, MetricData=data)


def table_rows(out: str) -> dict[str, list[str]]:
    rows = [[cell.strip() for cell in line.split("│")[1:-1]] for line in out.splitlines() if line.count("│") == 8]
    return {row[0]: row[1:] for row in rows}


@pytest.fixture
def last_hour(aws: StageResources) -> None:
    """replication: 2 invocations; ingest: 1; orders: one invocation 2 hours ago only; fanout: none."""
    ten_minutes_ago, a_minute_ago = NOW - timedelta(minutes=10), NOW - timedelta(minutes=1)
    put_invocation("replication", ConsumerMetrics(100, 97, 3, 4, 9, ten_minutes_ago - timedelta(seconds=2.5)),
                   ten_minutes_ago)
    put_invocation("replication", ConsumerMetrics(20, 20, 0, 0, 2, a_minute_ago - timedelta(seconds=4)), a_minute_ago)
    put_invocation("ingest", ConsumerMetrics(7, 6, 1, 0, 2), NOW - timedelta(minutes=5))
    put_invocation("orders", ConsumerMetrics(5, 5, 0, 0, 5, NOW - timedelta(hours=2)), NOW - timedelta(hours=2))


def test_status_shows_each_consumers_last_hour(aws: StageResources, last_hour: None, run_ops: RunOps,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert run_ops("status", "--approximate") == 0
    rows = table_rows(capsys.readouterr().out)
    #                          in     applied dead  retries calls  max lag
    assert rows["replication"] == ["120", "117", "3", "4", "11", "4.0 s"]
    assert rows["ingest"] == ["7", "6", "1", "0", "2", "-"]
    assert rows["orders"] == ["-", "-", "-", "-", "-", "-"]  # its only invocation is older than an hour
    assert rows["fanout"] == ["-", "-", "-", "-", "-", "-"]


def test_one_get_metric_data_call_reads_every_consumer(aws: StageResources, last_hour: None) -> None:
    cloudwatch = boto3.client("cloudwatch")
    counter = CallCounter(cloudwatch)
    windows, calls = read_windows(cloudwatch, "stream-pipeline", NOW + timedelta(minutes=1))
    assert calls == 1 and counter["GetMetricData"] == 1
    assert [w.consumer for w in windows if w.invoked] == ["replication", "ingest"]


def test_another_namespace_is_read_when_the_stage_names_one(aws: StageResources, run_ops: RunOps,
                                                            monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    put_invocation("fanout", ConsumerMetrics(3, 3, 0, 0, 1, NOW), NOW, namespace="team-b")
    monkeypatch.setenv("METRICS_NAMESPACE", "team-b")
    assert run_ops("status", "--approximate") == 0
    assert table_rows(capsys.readouterr().out)["fanout"][:2] == ["3", "3"]


def test_an_operator_without_get_metric_data_is_told_so(aws: StageResources, run_ops: RunOps,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    def denied(real: Any, **_: Any) -> Any:
        raise client_error("AccessDenied", "not allowed", "GetMetricData")

    clients.override("cloudwatch", FaultyClient(boto3.client("cloudwatch"), get_metric_data=denied))
    assert run_ops("status", "--approximate") == 1
    out = capsys.readouterr().out
    assert "consumer metrics of namespace stream-pipeline could not be read: AccessDenied" in out
    assert "cloudwatch:GetMetricData" in out


def test_queries_and_their_results_pure() -> None:
    queries = metric_queries("ns", timedelta(hours=1))
    assert len(queries) == 4 * 5 + 3  # five sums per consumer, the lag of the three stream consumers
    assert len({q["Id"] for q in queries}) == len(queries)
    assert {q["MetricStat"]["Period"] for q in queries} == {3600}
    results = [{"Id": "q_recordsin_fanout", "Values": [2.0, 3.0]}, {"Id": "q_streamlagms_fanout", "Values": [9, 4]}]
    fanout = {w.consumer: w for w in windows_of(results)}["fanout"]
    assert fanout.sums["RecordsIn"] == 5 and fanout.sums["RecordsApplied"] is None and fanout.max_lag_ms == 9
