"""The local stack reads a function's stdout back: EMF → PutMetricData requests, JSON logs → readable lines."""

from __future__ import annotations

import io
import json
import logging
import threading
from datetime import UTC, datetime, timedelta

import pytest

from chalicelib.observability.metrics import ConsumerMetrics, emf_document
from local_stack.function_output import FunctionOutput, StdoutRouter, is_emf, metric_data, render

NOW = datetime(2026, 11, 22, 10, 49, 11, 123000, tzinfo=UTC)


def test_an_emf_document_becomes_one_put_metric_data_with_the_same_names_units_dimensions_and_time() -> None:
    document = emf_document("replication", ConsumerMetrics(100, 97, 3, 2, 7, NOW - timedelta(seconds=2)), NOW,
                            namespace="ns")
    ((namespace, data),) = metric_data(document)
    assert namespace == "ns"
    assert {(d["MetricName"], d["Value"], d["Unit"]) for d in data} == {
        ("RecordsIn", 100, "Count"), ("RecordsApplied", 97, "Count"), ("RecordsDeadLettered", 3, "Count"),
        ("Retries", 2, "Count"), ("AwsCalls", 7, "Count"), ("StreamLagMs", 2000, "Milliseconds")}
    assert all(d["Dimensions"] == [{"Name": "consumer", "Value": "replication"}] for d in data)
    assert all(d["Timestamp"] == NOW for d in data)


def test_emf_from_elsewhere_scalar_values_several_dimension_sets_and_a_missing_value() -> None:
    document = {"_aws": {"Timestamp": 1_795_000_000_000, "CloudWatchMetrics": [
        {"Namespace": "other", "Dimensions": [["a"], ["a", "b"]],
         "Metrics": [{"Name": "Hits"}, {"Name": "Absent", "Unit": "Count"}]}]},
        "a": "x", "b": 2, "Hits": 5}
    ((_, data),) = metric_data(document)
    assert [(d["MetricName"], d["Value"], d["Unit"], d["Dimensions"]) for d in data] == [
        ("Hits", 5.0, "None", [{"Name": "a", "Value": "x"}]),
        ("Hits", 5.0, "None", [{"Name": "a", "Value": "x"}, {"Name": "b", "Value": "2"}])]


@pytest.mark.parametrize(("text", "emf"), [
    ('{"_aws": {"Timestamp": 1, "CloudWatchMetrics": []}}', True),
    ('{"level": "INFO", "message": "m"}', False),
    ('{"_aws": {}}', False),
    ("[1, 2]", False),
])
def test_is_emf(text: str, emf: bool) -> None:
    assert is_emf(json.loads(text)) is emf


def test_a_json_log_line_is_rendered_with_level_function_consumer_message_and_ids() -> None:
    level, text = render("replicate_users", {"level": "WARNING", "message": "record dead-lettered",
                                             "consumer": "replication", "eventID": "ev-1",
                                             "aws_request_id": "r", "timestamp": "t"})
    assert (level, text) == (logging.WARNING, "replicate_users [replication] record dead-lettered (eventID=ev-1)")
    _, text = render("ingest_device_metadata", {"level": "ERROR", "message": "failed", "messageId": "m-1",
                                                "exception": "Traceback ...\nValueError: x"})
    assert text == "ingest_device_metadata failed (messageId=m-1)\nTraceback ...\nValueError: x"


def test_function_output_sorts_its_lines(caplog: pytest.LogCaptureFixture) -> None:
    # GIVEN a function printing an EMF document, a JSON log line (in two writes) and a bare print
    output = FunctionOutput("fanout_users")
    emf = emf_document("fanout", ConsumerMetrics(1, 1), NOW)
    with caplog.at_level(logging.INFO, logger="local_stack.function"):
        output.write(json.dumps(emf) + "\n")
        output.write('{"level": "INFO", "message": "fanout: 1 record(s)", ')
        output.write('"consumer": "fanout"}\nhello')
        output.close_lines()

    # THEN the document is kept, and the rest is logged readably
    assert output.documents == [emf]
    assert [r.getMessage() for r in caplog.records] == ["fanout_users [fanout] fanout: 1 record(s)",
                                                        "fanout_users: hello"]


def test_the_router_keeps_each_threads_output_apart() -> None:
    target = io.StringIO()
    router = StdoutRouter(target)
    barrier = threading.Barrier(2)
    outputs: dict[str, FunctionOutput] = {}

    def run(name: str) -> None:
        with router.capture(name) as output:
            outputs[name] = output
            barrier.wait()
            router.write(json.dumps(emf_document(name, ConsumerMetrics(1), NOW)) + "\n")
            barrier.wait()

    threads = [threading.Thread(target=run, args=(name,)) for name in ("replication", "orders")]
    for thread in threads:
        thread.start()
    router.write("not captured\n")
    for thread in threads:
        thread.join()
    assert {name: [d["consumer"] for d in output.documents] for name, output in outputs.items()} == {
        "replication": ["replication"], "orders": ["orders"]}
    assert target.getvalue() == "not captured\n"
