"""Test-wide setup. Stage variables are set before anything imports `app` (Chalice reads
`USERS_STREAM_ARN` in a decorator at import; its test client patches variables only per request)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

_PLACEHOLDER_ENV = {
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
    # moto 5.2.5: in-process DynamoDB Streams calls need this.
    "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
    "USERS_STREAM_ARN": "arn:aws:dynamodb:us-east-1:123456789012:table/stream-pipeline-test-users/stream/x",
    "ORDERS_STREAM_ARN": "arn:aws:dynamodb:us-east-1:123456789012:table/stream-pipeline-test-orders/stream/x",
    "INGEST_QUEUE": "stream-pipeline-test-ingest",
    # In-process tests call the routes as the open dev stage does (chalice's local gateway admits IAM anyway).
    "API_AUTH": "none",
}
for _name, _value in _PLACEHOLDER_ENV.items():
    os.environ[_name] = _value
for _name in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
    os.environ.pop(_name, None)

from moto import mock_aws  # noqa: E402

from chalicelib import clients  # noqa: E402
from tests.support.resources import StageResources, deploy_stage  # noqa: E402


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[StageResources]:
    """A fresh in-process moto account with the stage's resources, and the stage variables set."""
    clients.reset()
    with mock_aws():
        resources = deploy_stage()
        for name, value in resources.env().items():
            monkeypatch.setenv(name, value)
        yield resources
    clients.reset()


@pytest.fixture
def chalice_client(aws: StageResources, tmp_path: Path) -> Iterator[object]:
    """Chalice's test client over the app, with a `test` stage whose variables name the moto resources."""
    import json

    from chalice.test import Client

    from app import app

    (tmp_path / ".chalice").mkdir()
    (tmp_path / ".chalice" / "config.json").write_text(json.dumps({
        "version": "2.0", "app_name": "stream-pipeline",
        "stages": {"test": {"environment_variables": aws.env()}},
    }))
    with Client(app, stage_name="test", project_dir=str(tmp_path)) as client:
        yield client


@pytest.fixture(autouse=True)
def _plain_logging() -> Iterator[None]:
    """A handler call configures JSON logging for the process; undo it, so caplog sees the next test's lines."""
    yield
    from chalicelib.observability import logs

    logs.unconfigure()
