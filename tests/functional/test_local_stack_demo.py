"""`make demo` (python -m local_stack.demo) when the local stack is down or dies mid-run: one clear line and
exit 2, never a traceback; and every run's e-mails are its own, even two runs within one second."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer

from local_stack.demo import run_id
from tooling.infrastructure import deploy_stack

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def demo(api: str, emulator: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    return subprocess.run([sys.executable, "-m", "local_stack.demo", "--api", api, "--emulator", emulator,
                           "--timeout", "2"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


class DyingApi(BaseHTTPRequestHandler):
    """An API that answers the demo's first look (GET) and then dies on the first write, mid-request."""

    def do_GET(self) -> None:  # noqa: N802 - BaseHTTPRequestHandler's naming
        body = b'{"items": [], "next": null}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:  # noqa: N802
        self.close_connection = True  # no answer at all: the process behind it is gone

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.fixture
def emulator_with_the_dev_stack() -> Iterator[str]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deploy_stack(boto3.client("cloudformation", endpoint_url=endpoint, region_name="us-east-1",
                                  aws_access_key_id="local", aws_secret_access_key="local"), "dev", poll=0.05)
        yield endpoint
    finally:
        server.stop()


@pytest.fixture
def dying_api() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), DyingApi)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_no_stack_running_is_one_line_naming_make_run():
    # GIVEN nothing listening on either port
    done = demo(f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}")
    # THEN one line, exit 2, no traceback
    output = (done.stdout + done.stderr).strip()
    assert done.returncode == 2, output
    assert len(output.splitlines()) == 1, output
    assert output.startswith("✗ No local stack answering") and "make run" in output, output
    assert "Traceback" not in output


def test_a_stack_that_dies_mid_run_is_one_line_after_the_steps_done(emulator_with_the_dev_stack: str,
                                                                    dying_api: str):
    # GIVEN a stack whose API answers the first look and then dies on the first POST
    done = demo(dying_api, emulator_with_the_dev_stack)
    # THEN the demo ends with one line saying the stack stopped answering, exit 2, no traceback
    output = (done.stdout + done.stderr).strip()
    assert done.returncode == 2, output
    assert "Traceback" not in output, output
    last = output.splitlines()[-1]
    assert last.startswith("✗ The local stack stopped answering mid-run: the API at ") and "POST /users" in last, output


def test_two_runs_in_the_same_second_use_different_e_mails():
    same_second = time.localtime()
    suffixes = {run_id(lambda: same_second) for _ in range(50)}
    assert len(suffixes) == 50
    assert all(s.startswith(time.strftime("%H%M%S", same_second) + "-") for s in suffixes)
