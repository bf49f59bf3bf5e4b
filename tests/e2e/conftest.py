"""The local stack as a user runs it: `python -m local_stack` in its own process group, driven over
HTTP and boto3 only, and always shut down (SIGINT, then SIGKILL) even when a test fails."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

ROOT = Path(__file__).resolve().parents[2]
READY = re.compile(r"local stack ready: API (http://\S+), emulator (http://\S+),")
START_TIMEOUT = 120.0  # a slow, shared CI machine
STOP_TIMEOUT = 20.0


class LocalStackProcess:
    """One `python -m local_stack` subprocess and everything it printed."""

    def __init__(self, emulator_port: int = 0, api_port: int = 0, env: dict[str, str] | None = None,
                 command: list[str] | None = None):
        environment = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        environment.update(env or {})
        environment["PYTHONUNBUFFERED"] = "1"
        self.lines: list[str] = []
        self.api = ""
        self.emulator = ""
        self.returncode: int | None = None
        self._ready = threading.Event()
        self._process = subprocess.Popen(
            command or [sys.executable, "-m", "local_stack", "--emulator-port", str(emulator_port), "--api-port",
                        str(api_port), "--poll-interval", "0.05"],
            cwd=ROOT, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            start_new_session=True,  # its own process group: the whole stack is signalled, nothing leaks
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            self.lines.append(line.rstrip("\n"))
            found = READY.search(line)
            if found:
                self.api, self.emulator = found.group(1), found.group(2)
                self._ready.set()

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while not self._ready.wait(0.2):
            if self._process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("local stack did not start:\n" + self.output())

    def stop(self) -> int:
        """SIGINT to the process group (Ctrl-C), SIGKILL if it has not exited in time; the exit code."""
        if self._process.poll() is None:
            try:
                os.killpg(self._process.pid, signal.SIGINT)
                self._process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(self._process.pid, signal.SIGKILL)
                self._process.wait(STOP_TIMEOUT)
            except ProcessLookupError:
                pass
        self._reader.join(5)
        self.returncode = self._process.returncode
        return self._process.returncode

    @property
    def running(self) -> bool:
        return self._process.poll() is None

    def output(self) -> str:
        return "\n".join(self.lines)

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


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStackProcess]:
    """A running local stack whose process_orders fails its first delivery (the fault hook)."""
    process = LocalStackProcess(env={"LOCAL_STACK_FAIL_ONCE": "process_orders"})
    try:
        process.wait_ready()
        yield process
    finally:
        process.stop()


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
