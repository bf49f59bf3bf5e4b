"""Structured logs: one JSON object per line, with the invocation's keys, per thread."""

from __future__ import annotations

import json
import logging
import threading
from types import SimpleNamespace

import pytest

from chalicelib.observability import logs

CONTEXT = SimpleNamespace(function_name="stream-pipeline-dev-replicate_users", aws_request_id="req-1")


def lines(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines()]


def test_a_line_is_one_json_object_with_level_message_and_the_invocation_keys(
        capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN logging configured and an invocation bound
    logs.configure()
    log = logging.getLogger("chalicelib.replication.consumer")

    # WHEN a consumer logs about the batch and about one record
    with logs.invocation("replication", CONTEXT):
        log.info("replication: %d record(s)", 3)
        log.warning("record dead-lettered", extra={"eventID": "ev-1"})
    log.info("after the invocation")

    # THEN each line parses alone and carries the keys
    first, second, after = lines(capsys.readouterr().out)
    assert first["level"] == "INFO" and first["message"] == "replication: 3 record(s)"
    assert (first["consumer"], first["function"], first["aws_request_id"]) == (
        "replication", "stream-pipeline-dev-replicate_users", "req-1")
    assert second["level"] == "WARNING" and second["eventID"] == "ev-1" and second["consumer"] == "replication"
    assert "consumer" not in after and "aws_request_id" not in after
    assert first["timestamp"].endswith("+00:00")


def test_lambda_names_the_function_in_its_environment(monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "stream-pipeline-prod-fanout_users")
    logs.configure()
    with logs.invocation("fanout", SimpleNamespace(aws_request_id="req-2")):
        logging.getLogger("chalicelib.fanout").info("published")
    (line,) = lines(capsys.readouterr().out)
    assert line["function"] == "stream-pipeline-prod-fanout_users" and line["aws_request_id"] == "req-2"


def test_parallel_invocations_keep_their_own_keys(capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN two handlers running at once in one process (as in the local stack)
    logs.configure()
    barrier = threading.Barrier(2)

    def run(consumer: str) -> None:
        with logs.invocation(consumer, SimpleNamespace(aws_request_id=f"req-{consumer}")):
            barrier.wait()
            logging.getLogger("chalicelib").info("from %s", consumer)
            barrier.wait()

    threads = [threading.Thread(target=run, args=(name,)) for name in ("replication", "fanout")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # THEN each line names its own consumer and request
    found = {(line["message"], line["consumer"], line["aws_request_id"]) for line in lines(capsys.readouterr().out)}
    assert found == {("from replication", "replication", "req-replication"), ("from fanout", "fanout", "req-fanout")}


def test_an_exception_stays_on_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure()
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("chalicelib").exception("handler failed", extra={"eventID": "ev-9"})
    (line,) = lines(capsys.readouterr().out)
    assert line["exception_name"] == "ValueError" and "boom" in line["exception"] and line["eventID"] == "ev-9"


def test_configure_is_idempotent_and_replaces_chalices_plain_handler(capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN Chalice's app.log with its own plain-text handler
    from chalice import Chalice

    app_log = Chalice(app_name="observability-test").log
    logs.configure(app_log)
    logs.configure(app_log)
    app_log.error("Caught exception for %s", "route")
    (line,) = lines(capsys.readouterr().out)
    assert line == {**line, "level": "ERROR", "message": "Caught exception for route"}


def test_unconfigure_gives_the_lines_back_to_the_root_logger(caplog: pytest.LogCaptureFixture) -> None:
    logs.configure()
    logs.unconfigure()
    with caplog.at_level(logging.INFO):
        logging.getLogger("chalicelib.x").info("seen by caplog")
    assert "seen by caplog" in caplog.text


def test_the_sdks_wire_log_stays_off_when_the_root_logger_is_at_debug() -> None:
    # GIVEN the root logger at DEBUG (Lambda's AWS_LAMBDA_LOG_LEVEL=DEBUG) and a developer's explicit s3transfer level
    root, s3transfer = logging.getLogger(), logging.getLogger("s3transfer")
    level = root.level
    root.setLevel(logging.DEBUG)
    s3transfer.setLevel(logging.DEBUG)
    try:
        # WHEN logging is configured
        logs.configure()
        # THEN botocore's DEBUG lines (whole requests and responses: items, message bodies) are not emitted,
        assert not logging.getLogger("botocore.endpoint").isEnabledFor(logging.DEBUG)
        assert logging.getLogger("boto3.resources.action").getEffectiveLevel() == logging.INFO
        # an explicit level stands, and unconfigure gives the SDK its inherited level back
        assert s3transfer.level == logging.DEBUG
        logs.unconfigure()
        assert logging.getLogger("botocore").level == logging.NOTSET
    finally:
        root.setLevel(level)
        s3transfer.setLevel(logging.NOTSET)
