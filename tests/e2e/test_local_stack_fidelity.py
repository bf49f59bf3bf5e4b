"""SPEC "Commands", fidelity: the local stack behaves like AWS where a developer would notice — a bus target that
fails fails alone, subscribers get `detail` with every digit, every flow still works with 10,000 users' worth of
data in it, and `chalice local --stage dev` against it serves the API. Driven over HTTP and boto3 only."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from local_stack import loadgen, moto_patches
from tests.e2e.conftest import CONFIG, ROOT, STAGE_VARIABLES, LocalStackProcess, eventually, free_port, running
from tooling.infrastructure import stage_environment

pytestmark = pytest.mark.e2e

FLOW_TIMEOUT = 15.0
CHALICE = Path(sys.executable).with_name("chalice")


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStackProcess]:
    yield from running()


def new_user(state: str = "NY", city: str = "Brooklyn") -> dict[str, str]:
    return {"email": f"fidelity-{uuid.uuid4().hex[:10]}@example.com", "state": state, "city": city,
            "zipcode": "11201"}


def depth(sqs: Any, url: str) -> int:
    return loadgen.queue_depth(sqs, url)


def subscriber_events(stack: LocalStackProcess, emails: set[str], timeout: float = FLOW_TIMEOUT) -> dict[str, str]:
    """Message text of the fan-out event for each of `emails` from the example subscriber queue (others are
    deleted as they are read: run this before the queue is filled)."""
    sqs, url = stack.client("sqs"), loadgen.subscriber_queue_url(stack.emulator)
    found: dict[str, str] = {}
    deadline = time.monotonic() + timeout
    while set(found) != emails and time.monotonic() < deadline:
        for message in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get(
                "Messages", []):
            email = json.loads(message["Body"])["detail"]["keys"].get("email")
            if email in emails:
                found[email] = message["Body"]
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return found


def test_the_stack_says_which_moto_patches_it_runs(stack):
    started = next(line for line in stack.lines if "emulator (moto server) on" in line)
    for patch in moto_patches.PATCHES:
        assert patch.name in started, started


def test_a_rule_whose_target_queue_is_missing_fails_alone_and_nothing_is_dead_lettered(stack):
    # GIVEN a second subscriber on the bus whose queue does not exist
    outputs = stack.outputs()
    events, sqs = stack.client("events"), stack.client("sqs")
    bus = outputs["EventBusName"]
    events.put_rule(Name="gone-subscriber", EventBusName=bus, EventPattern=json.dumps(
        {"source": ["stream-pipeline.users"]}))
    events.put_targets(Rule="gone-subscriber", EventBusName=bus, Targets=[
        {"Id": "gone", "Arn": "arn:aws:sqs:us-east-1:123456789012:stream-pipeline-dev-gone"}])
    try:
        # WHEN three users are created
        users = [new_user() for _ in range(3)]
        for user in users:
            assert stack.http("POST", "/users", user)[0] == 201

        # THEN the example subscriber still receives every event
        received = subscriber_events(stack, {u["email"] for u in users})
        assert len(received) == 3, stack.output()[-3000:]
    finally:
        events.remove_targets(Rule="gone-subscriber", EventBusName=bus, Ids=["gone"])
        events.delete_rule(Name="gone-subscriber", EventBusName=bus)
    # AND nothing was dead-lettered: PutEvents succeeded every time
    assert depth(sqs, outputs["StreamDlqUrl"]) == 0
    # AND the failure is visible: logged by the stack, counted as AWS/Events FailedInvocations for the rule
    logged = [line for line in stack.lines if "rule gone-subscriber target gone" in line]
    assert logged and "RESOURCE_NOT_FOUND" in logged[0], stack.output()[-3000:]
    stats = stack.client("cloudwatch").get_metric_statistics(
        Namespace="AWS/Events", MetricName="FailedInvocations", StartTime="2000-01-01", EndTime="2100-01-01",
        Dimensions=[{"Name": "RuleName", "Value": "gone-subscriber"}], Period=86400, Statistics=["Sum"])
    assert sum(point["Sum"] for point in stats["Datapoints"]) == 3


def test_a_20_digit_integer_and_a_38_digit_decimal_reach_the_subscriber_with_every_digit(stack):
    # GIVEN a user item written with numbers no float holds (around the API, which takes no such fields)
    user = new_user()
    item = {name: {"S": value} for name, value in user.items()}
    item.update(score={"N": "12345678901234567890"}, ratio={"N": "1234567890123456789.0123456789012345678"})
    stack.client("dynamodb").put_item(TableName=stack.outputs()["UsersTable"], Item=item)

    # WHEN fan-out publishes the change  THEN the subscriber's message text holds every digit
    body = subscriber_events(stack, {user["email"]}).get(user["email"])
    assert body is not None, stack.output()[-3000:]
    assert "12345678901234567890" in body and "1234567890123456789.0123456789012345678" in body, body
    assert "e+" not in body


def test_the_soak_driver_writes_users_and_times_post_to_queryable(stack):
    # `python -m local_stack.loadgen soak` is these building blocks (BENCHMARKS.md reuses them)
    written = loadgen.post_users(stack.api, uuid.uuid4().hex[:8], 0, 20, clients=4)
    latencies = loadgen.probe_latency(stack.api, samples=3)
    assert (written.users, written.clients) == (20, 4) and written.per_second > 0
    assert len(latencies) == 3 and all(0 < seconds < FLOW_TIMEOUT for seconds in latencies)
    assert loadgen.cpu_seconds(stack.pid) > 0


def test_with_10000_users_worth_of_data_every_flow_still_answers_exactly(stack):
    # GIVEN what 10,000 users leave behind: 10,000 target items and 10,000 events in the undrained subscriber queue
    sqs, url = stack.client("sqs"), loadgen.subscriber_queue_url(stack.emulator)
    before, run = depth(sqs, url), uuid.uuid4().hex[:8]
    loadgen.prefill(stack.emulator, 10_000, run)
    assert depth(sqs, url) == before + 10_000  # the counts SQS reports stay exact (computed when asked)

    # WHEN a user is created
    user = new_user(state=loadgen.STATES[3], city="Somewhere New")
    assert stack.http("POST", "/users", user)[0] == 201

    # THEN it is queryable by state and city, its event joins the queue, and a full partition pages correctly
    def queryable() -> list[dict[str, Any]]:
        return stack.http("GET", f"/users?state={user['state']}&city=Somewhere%20New")[1]["items"]

    assert [u["email"] for u in eventually(queryable, FLOW_TIMEOUT)] == [user["email"]], stack.output()[-3000:]
    assert eventually(lambda: depth(sqs, url) == before + 10_001, FLOW_TIMEOUT)
    emails, token = [], None
    while True:
        status, page = stack.http("GET", f"/users?state={loadgen.STATES[5]}&limit=100" + (
            f"&next={token}" if token else ""))
        assert status == 200, page
        emails += [u["email"] for u in page["items"] if u["email"].startswith(f"load-{run}-")]
        if not (token := page["next"]):
            break
    assert len(emails) == len(set(emails)) == 200  # 10,000 users over 50 states


def test_the_dev_stage_names_the_resources_the_local_stack_creates(stack):
    variables = json.loads(CONFIG.read_text())["stages"]["dev"]["environment_variables"]
    created = stage_environment(stack.outputs())
    for name, value in created.items():
        if name.endswith("_ARN"):
            continue  # stream ARNs carry a label that is new on every start
        assert variables[name].rsplit("/", 1)[-1] == value.rsplit("/", 1)[-1], name


def chalice_local_env(stack: LocalStackProcess) -> dict[str, str]:
    """A shell where only AWS_ENDPOINT_URL is set: no region, no credentials, no stage variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k not in STAGE_VARIABLES}
    env.update(AWS_ENDPOINT_URL=stack.emulator, AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull)
    return env


def test_chalice_local_on_stage_dev_serves_the_api_against_the_running_stack(stack):
    # GIVEN `chalice local --stage dev` started as the README shows, with only AWS_ENDPOINT_URL set
    port = free_port()
    process = subprocess.Popen([str(CHALICE), "local", "--stage", "dev", "--port", str(port)], cwd=ROOT,
                               env=chalice_local_env(stack), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, start_new_session=True)
    api = loadgen.ApiClient(f"http://127.0.0.1:{port}")
    try:
        assert eventually(lambda: _listening(port), 60, 0.2), _stop(process)
        user = new_user(state="VT", city="Burlington")

        # WHEN a user is POSTed and read back through it
        created = api.request("POST", "/users", user)
        fetched = api.request("GET", f"/users/{user['email']}")

        # THEN both answer as the stack's own API does, and the stack's pollers replicate the write
        assert created[0] == 201, (created, _stop(process))
        assert fetched == (200, created[1])

        def replicated() -> list[dict[str, Any]]:
            return api.request("GET", "/users?state=VT&city=Burlington")[1]["items"]

        assert [u["email"] for u in eventually(replicated, FLOW_TIMEOUT)] == [user["email"]]
    finally:
        api.close()
        output = _stop(process)
    assert "NoRegionError" not in output and "Traceback" not in output, output


def _listening(port: int) -> bool:
    import socket

    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _stop(process: subprocess.Popen[str]) -> str:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)  # its reloader and server both
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(20)
    return process.stdout.read() if process.stdout else ""
