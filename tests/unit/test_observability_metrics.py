"""EMF documents: the SPEC's namespace, dimension set, names and units, exact counts, StreamLagMs."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta

import pytest

from chalicelib.observability.metrics import ConsumerMetrics, emf_document, emit, stream_lag_ms

NOW = datetime.now(UTC).replace(microsecond=250_000)
SPEC_UNITS = {"RecordsIn": "Count", "RecordsApplied": "Count", "RecordsDeadLettered": "Count", "Retries": "Count",
              "AwsCalls": "Count", "StreamLagMs": "Milliseconds"}


def values(document: dict) -> dict[str, float]:
    """Metric name → the one value the document carries for it (EMF allows a number or a list)."""
    found = {}
    for definition in document["_aws"]["CloudWatchMetrics"][0]["Metrics"]:
        value = document[definition["Name"]]
        assert not isinstance(value, list) or len(value) == 1, "one value per metric: summed over the invocation"
        found[definition["Name"]] = value[0] if isinstance(value, list) else value
    return found


def assert_valid_emf(document: dict, namespace: str = "stream-pipeline") -> None:
    """What CloudWatch requires of an EMF document, and the SPEC's names and units."""
    directive = document["_aws"]
    assert isinstance(directive["Timestamp"], int)
    (metric_directive,) = directive["CloudWatchMetrics"]
    assert metric_directive["Namespace"] == namespace
    assert metric_directive["Dimensions"] == [["consumer"]]
    assert isinstance(document["consumer"], str)
    for definition in metric_directive["Metrics"]:
        assert SPEC_UNITS[definition["Name"]] == definition["Unit"]
        assert definition["Name"] in document  # every declared metric has its value at the top level


def test_a_stream_batch_of_100_with_3_dead_letters() -> None:
    # GIVEN an invocation of 100 records, 3 dead-lettered, the oldest created 2.5 s before the invocation
    metrics = ConsumerMetrics(records_in=100, applied=97, dead_lettered=3, retries=2, aws_calls=7,
                              oldest_created_at=NOW - timedelta(seconds=2.5))

    # WHEN its document is built
    document = emf_document("replication", metrics, NOW)

    # THEN it is valid EMF with exact counts and the lag in milliseconds
    assert_valid_emf(document)
    assert document["consumer"] == "replication"
    assert values(document) == {"RecordsIn": 100, "RecordsApplied": 97, "RecordsDeadLettered": 3, "Retries": 2,
                                "AwsCalls": 7, "StreamLagMs": 2500}
    assert document["_aws"]["Timestamp"] == int(NOW.timestamp() * 1000)


def test_a_queue_consumer_has_no_stream_lag_and_zero_counts_are_sent() -> None:
    document = emf_document("ingest", ConsumerMetrics(records_in=4, applied=4), NOW, namespace="team-a")
    assert_valid_emf(document, namespace="team-a")
    assert values(document) == {"RecordsIn": 4, "RecordsApplied": 4, "RecordsDeadLettered": 0, "Retries": 0,
                                "AwsCalls": 0}


def test_the_service_variable_of_powertools_adds_no_dimension(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "something")
    document = emf_document("fanout", ConsumerMetrics(records_in=1, applied=1), NOW)
    assert document["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["consumer"]] and "service" not in document


def test_emit_prints_one_line_per_invocation() -> None:
    out = io.StringIO()
    emit("orders", ConsumerMetrics(records_in=3, applied=3, aws_calls=3, oldest_created_at=NOW), NOW, out=out)
    (line,) = out.getvalue().splitlines()
    assert_valid_emf(json.loads(line))


@pytest.mark.parametrize(("oldest", "lag"), [
    (NOW - timedelta(milliseconds=1), 1),
    (NOW - timedelta(hours=1), 3_600_000),
    (NOW + timedelta(seconds=1), 0),  # a clock ahead of the invocation's: no negative lag
    (None, None),
    ((NOW - timedelta(seconds=1)).replace(tzinfo=None), 1000),  # naive: UTC
])
def test_stream_lag(oldest: datetime | None, lag: int | None) -> None:
    assert stream_lag_ms(oldest, NOW) == lag
