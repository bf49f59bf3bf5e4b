"""The real entry point, `python -m ops ...` in a subprocess, against an emulator reached by AWS_ENDPOINT_URL
(the way operators use it against the local stack)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer

from chalicelib.stream.images import typed_item
from tests.ops.ops_support import user
from tooling.infrastructure import deploy_stack, stage_environment

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def emulator(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    try:
        yield endpoint
    finally:
        server.stop()


def test_backfill_verify_status_and_redrive_through_the_cli(emulator: str, tmp_path: Path) -> None:
    # GIVEN a stage provisioned in the emulator from the template, with 30 users and no replicas
    outputs = deploy_stack(boto3.client("cloudformation"), "cli", poll=0.05)
    variables = stage_environment(outputs)
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"version": "2.0", "app_name": "stream-pipeline",
                                  "stages": {"cli": {"environment_variables": variables}}}))
    dynamodb = boto3.client("dynamodb")
    for n in range(30):
        dynamodb.put_item(TableName=variables["USERS_TABLE"], Item=typed_item(user(n)))
    # The stage's variables come from the config file only (the process environment would win).
    env = {k: v for k, v in os.environ.items() if k not in variables}
    env["AWS_ENDPOINT_URL"] = emulator

    def ops(*argv: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "ops", argv[0], "--stage", "cli", "--config", str(config), *argv[1:]]
        return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)

    # WHEN verifying before and after a backfill
    before = ops("verify", "--no-progress")
    backfill = ops("backfill", "--no-progress", "--checkpoint", str(tmp_path / "cp.json"))
    after = ops("verify", "--no-progress")
    status = ops("status", "--peek", "--wait-seconds", "0")
    redrive = ops("redrive", "--dry-run", "--wait-seconds", "0")

    # THEN drift of 30 missing items is reported (exit 1), copied, and gone
    assert before.returncode == 1, before.stderr
    assert "missing" in before.stdout and "30" in before.stdout
    assert backfill.returncode == 0, backfill.stderr
    assert "backfill complete" in backfill.stdout
    assert after.returncode == 0 and "no drift" in after.stdout, after.stdout + after.stderr
    assert status.returncode == 0 and "users by location (target)" in status.stdout, status.stderr
    assert redrive.returncode == 0 and "no dead letters" in redrive.stdout, redrive.stderr
