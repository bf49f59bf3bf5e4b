"""The app's handlers log JSON lines naming consumer, function and request, and nothing personal."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from tests.support.events import insert, remove, sqs_event, sqs_message, stream_event


def json_lines(out: str) -> list[dict[str, Any]]:
    """The log lines a handler printed (its EMF document, also JSON, aside)."""
    parsed = [json.loads(line) for line in out.splitlines() if line.strip()]  # every line parses alone
    lines = [line for line in parsed if "_aws" not in line]
    assert lines, "the handler logged nothing"
    return lines


def test_a_stream_handler_logs_json_lines_with_its_consumer(chalice_client: Any, aws: Any,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN a batch that replicates one user and dead-letters a malformed record
    ada = {"email": "ada@example.com", "state": "NY", "city": "Brooklyn", "zipcode": "11201", "active": True}
    malformed = remove(ada)
    del malformed["dynamodb"]["Keys"]
    capsys.readouterr()

    # WHEN the app's handler runs it
    chalice_client.lambda_.invoke("replicate_users", stream_event(insert(ada), malformed))  # type: ignore[attr-defined]

    # THEN every line is a JSON object naming the consumer, function and request, without the user's e-mail
    out = capsys.readouterr().out
    for line in json_lines(out):
        assert line["consumer"] == "replication" and line["function"] == "replicate_users"
        assert line["aws_request_id"] and line["level"] in {"INFO", "WARNING", "ERROR"}
    assert "ada@example.com" not in out and "Brooklyn" not in out


def test_the_ingest_handler_never_logs_a_message_body(chalice_client: Any, aws: Any,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    valid = sqs_message({"user_id": "u-secret", "device": "pixel-9", "location": "Lisbon"})
    invalid = sqs_message({"user_id": "u-other", "device": "", "location": "Porto"})
    boto3.client("sqs")  # the moto account exists
    capsys.readouterr()
    chalice_client.lambda_.invoke("ingest_device_metadata", sqs_event(valid, invalid))  # type: ignore[attr-defined]
    out = capsys.readouterr().out
    assert {line["consumer"] for line in json_lines(out)} == {"ingest"}
    for secret in ("u-secret", "u-other", "Lisbon", "Porto", "pixel-9"):
        assert secret not in out


def test_an_api_error_is_one_json_line_with_the_request_id(chalice_client: Any, aws: Any,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN a route whose storage fails in a way no code handles
    from chalicelib import clients

    class Broken:
        def __getattr__(self, name: str) -> Any:
            raise RuntimeError("storage exploded")

    clients.override("dynamodb", Broken())
    capsys.readouterr()

    # WHEN it is called
    response = chalice_client.http.get("/users/nobody@example.com")  # type: ignore[attr-defined]

    # THEN the client gets a 500 and Chalice's own error line is JSON with the request id, traceback included
    assert response.status_code == 500
    (line,) = json_lines(capsys.readouterr().out)
    assert line["level"] == "ERROR" and line["aws_request_id"] and line["exception_name"] == "RuntimeError"
    assert "consumer" not in line
