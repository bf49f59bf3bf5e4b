"""The local stack as a user runs it: `python -m local_stack` in its own process group, driven over
HTTP and boto3 only, and always shut down (SIGINT, then SIGKILL) even when a test fails."""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from local_stack.loadgen import StackProcess

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / ".chalice" / "config.json"
STAGE_VARIABLES = set(json.loads(CONFIG.read_text())["stages"]["dev"]["environment_variables"])


class LocalStackProcess(StackProcess):
    """One `python -m local_stack` subprocess (polling fast), with clients for its emulator and API."""

    def __init__(self, emulator_port: int = 0, api_port: int = 0, env: dict[str, str] | None = None,
                 command: list[str] | None = None):
        super().__init__(emulator_port, api_port, ("--poll-interval", "0.05"), env, command=command)

    # --- clients ---------------------------------------------------------------------------------

    def client(self, service: str) -> Any:
        return boto3.client(service, endpoint_url=self.emulator, region_name="us-east-1",
                            aws_access_key_id="local", aws_secret_access_key="local")

    def outputs(self) -> dict[str, str]:
        stack = self.client("cloudformation").describe_stacks(StackName="stream-pipeline-dev")["Stacks"][0]
        return {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}

    def http(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.api + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status, text = response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            status, text = error.code, error.read().decode()
        return status, json.loads(text) if text else None


def running(env: dict[str, str] | None = None) -> Iterator[LocalStackProcess]:
    """A started local stack for a module fixture; stopped when the module is done, even after a failure."""
    process = LocalStackProcess(env=env)
    try:
        process.wait_ready()
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStackProcess]:
    """A running local stack whose process_orders fails its first delivery (the fault hook)."""
    yield from running({"LOCAL_STACK_FAIL_ONCE": "process_orders"})


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def eventually(probe: Any, timeout: float, interval: float = 0.05) -> Any:
    """`probe()` until truthy (returned), or the last falsy answer after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found or time.monotonic() > deadline:
            return found
        time.sleep(interval)
