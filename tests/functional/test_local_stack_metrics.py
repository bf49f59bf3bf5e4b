"""The local stack forwards a function's EMF documents to CloudWatch and renders its JSON log lines."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws

from chalicelib.observability.invocation import observed
from chalicelib.observability.metrics import ConsumerMetrics, emit
from local_stack import function_output
from local_stack.invocation import Invoker


@pytest.fixture
def cloudwatch() -> Iterator[Any]:
    with mock_aws():
        yield boto3.client("cloudwatch", region_name="us-east-1")


@contextmanager
def router() -> Iterator[None]:
    """The local stack's stdout router (installed in the test itself: pytest swaps sys.stdout between phases)."""
    function_output.install()
    try:
        yield
    finally:
        function_output.uninstall()


def statistic(cloudwatch: Any, metric: str, consumer: str, stat: str = "Sum") -> float | None:
    now = datetime.now(UTC)
    points = cloudwatch.get_metric_statistics(
        Namespace="stream-pipeline", MetricName=metric, Dimensions=[{"Name": "consumer", "Value": consumer}],
        StartTime=now - timedelta(hours=1), EndTime=now + timedelta(minutes=1), Period=3600, Statistics=[stat],
    )["Datapoints"]
    return points[0][stat] if points else None


def test_an_invocations_metrics_reach_cloudwatch_and_its_logs_are_rendered(
        cloudwatch: Any, caplog: pytest.LogCaptureFixture) -> None:
    # GIVEN a handler that logs a JSON line and emits its metrics, as the consumers do
    @observed("replication")
    def handler(event: dict[str, Any]) -> dict[str, list[Any]]:
        now = datetime.now(UTC)
        logging.getLogger("chalicelib.replication").warning("record dead-lettered", extra={"eventID": "ev-7"})
        emit("replication", ConsumerMetrics(100, 97, 3, 1, 5, now - timedelta(seconds=3)), now)
        return {"batchItemFailures": []}

    invoker = Invoker("replicate_users", lambda event, context: handler(event),
                      metrics=function_output.MetricsForwarder(cloudwatch))

    # WHEN the local stack invokes it twice
    with caplog.at_level(logging.INFO), router():
        for _ in range(2):
            invoker.invoke({"Records": []}, ["1"], "stream test")

    # THEN CloudWatch holds both invocations' metrics, under the SPEC's names, per consumer
    assert statistic(cloudwatch, "RecordsIn", "replication") == 200
    assert statistic(cloudwatch, "RecordsApplied", "replication") == 194
    assert statistic(cloudwatch, "RecordsDeadLettered", "replication") == 6
    lag = statistic(cloudwatch, "StreamLagMs", "replication", "Maximum")
    assert lag is not None and 3000 <= lag < 10_000
    assert statistic(cloudwatch, "RecordsIn", "fanout") is None
    # AND the log line reads as a sentence, before the delivery line
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("local_stack")]
    assert messages[0] == "replicate_users [replication] record dead-lettered (eventID=ev-7)"
    assert messages[1].startswith("replicate_users ← stream test: 1 record(s)")


def test_metrics_that_cannot_be_forwarded_are_a_warning_not_a_failed_delivery(
        caplog: pytest.LogCaptureFixture) -> None:
    class Away:
        def put_metric_data(self, **_: Any) -> None:
            raise ConnectionError("emulator stopped")

    def handler(event: dict[str, Any], context: Any) -> None:
        emit("orders", ConsumerMetrics(1, 1), datetime.now(UTC))

    with caplog.at_level(logging.WARNING), router():
        delivery = Invoker("process_orders", handler, metrics=function_output.MetricsForwarder(Away())).invoke(
            {"Records": []}, ["1"], "stream test")
    assert delivery.outcome.describe() == "ok"
    assert "metrics not forwarded to CloudWatch: emulator stopped" in caplog.text


def test_a_started_forwarder_sends_off_the_invoking_thread_and_drains_on_stop(cloudwatch: Any) -> None:
    # GIVEN a started forwarder whose CloudWatch answers only once released (a slow emulator)
    released = threading.Event()

    class Slow:
        def put_metric_data(self, **request: Any) -> None:
            released.wait(10)
            cloudwatch.put_metric_data(**request)

    forwarder = function_output.MetricsForwarder(Slow())
    forwarder.start()

    def handler(event: dict[str, Any], context: Any) -> None:
        emit("orders", ConsumerMetrics(2, 2), datetime.now(UTC))

    # WHEN the local stack invokes the handler twice
    try:
        with router():
            for _ in range(2):
                assert Invoker("process_orders", handler, metrics=forwarder).invoke(
                    {"Records": []}, ["1"], "stream test").outcome.describe() == "ok"
        # THEN each invocation returned without waiting for CloudWatch
        assert statistic(cloudwatch, "RecordsIn", "orders") is None
    finally:
        released.set()
        forwarder.stop()
    # AND stopping sent everything queued
    assert statistic(cloudwatch, "RecordsIn", "orders") == 4
