"""Deploy rehearsal against a moto server: `python -m ops provision --stage dev`, `chalice deploy --stage dev`,
then `python -m ops provision --stage dev --event-sources` (and `--api-throttling`), exactly as an operator runs
them, in a copy of the project (the real .chalice stays untouched).

The emulator cannot take one step: moto 5.2.5's ImportRestApi reads `info.description` from the swagger
document, which Chalice does not write, and answers HTTP 500 (KeyError 'description'). Chalice creates the
roles, functions and event source mappings before the REST API, so everything up to that step is checked.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from ops import policies
from tests.deploy.conftest import CHALICE, AppShape, clean_env, copy_project
from tooling.infrastructure import stack_name


@pytest.fixture
def moto_server(tmp_path: Path, free_port: int) -> Iterator[tuple[str, Path]]:
    """A moto server of our own on a free port: (endpoint, its log)."""
    log = tmp_path / "moto.log"
    with log.open("w") as sink:
        server = subprocess.Popen([str(Path(sys.executable).with_name("moto_server")), "-p", str(free_port)],
                                  stdout=sink, stderr=subprocess.STDOUT, env=clean_env())
    endpoint = f"http://127.0.0.1:{free_port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto server did not start:\n{log.read_text()}") from None
                time.sleep(0.1)
        yield endpoint, log
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def client(service: str, endpoint: str) -> Any:
    return boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                                 region_name="us-east-1").client(service, endpoint_url=endpoint)


def test_provision_then_chalice_deploy_creates_functions_and_mappings_on_the_provisioned_resources(
        moto_server: tuple[str, Path], tmp_path: Path, app_shape: AppShape) -> None:
    endpoint, moto_log = moto_server
    project = copy_project(tmp_path / "project")
    env = clean_env(AWS_ENDPOINT_URL=endpoint, AWS_ACCOUNT_ID_ENDPOINT_MODE="disabled")

    # WHEN the operator provisions the stage
    provisioned = subprocess.run([sys.executable, "-m", "ops", "provision", "--stage", "dev"], cwd=project,
                                 env=env, capture_output=True, text=True, timeout=300)
    assert provisioned.returncode == 0, provisioned.stdout + provisioned.stderr

    # THEN config.json names the stack's resources (no hand edit follows)
    config = json.loads((project / ".chalice" / "config.json").read_text())
    recorded = config["stages"]["dev"]["environment_variables"]
    stack = client("cloudformation", endpoint).describe_stacks(StackName=stack_name("dev"))["Stacks"][0]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}
    assert recorded["USERS_STREAM_ARN"] == outputs["UsersStreamArn"]
    assert recorded["ORDERS_STREAM_ARN"] == outputs["OrdersStreamArn"]
    assert recorded["API_AUTH"] == "none"

    # WHEN the operator deploys the app
    deployed = subprocess.run([CHALICE, "deploy", "--stage", "dev"], cwd=project, env=env,
                              capture_output=True, text=True, timeout=300)
    transcript = deployed.stdout + deployed.stderr

    # THEN the one step moto cannot take is ImportRestApi, and it fails for moto's reason only
    steps = [line for line in deployed.stdout.splitlines() if line and not line.startswith(" ")]
    assert deployed.returncode != 0, "chalice deploy passed on moto: turn this step into a check of the API"
    assert steps[-1] == "Creating Rest API", transcript
    assert "when calling the ImportRestApi operation" in transcript, transcript
    assert "KeyError: 'description'" in moto_log.read_text()

    # AND every function exists under Chalice's name, with its own role carrying exactly its policy file
    arns = policies.StageArns.from_environment("dev", recorded)
    lambda_client, iam = client("lambda", endpoint), client("iam", endpoint)
    functions = {f["FunctionName"]: f for f in lambda_client.list_functions()["Functions"]}
    assert set(functions) == {arns.function_name(fn) for fn in app_shape.functions}
    for function in app_shape.functions:
        deployed_function = functions[arns.function_name(function)]
        assert deployed_function["Environment"]["Variables"] == recorded, function
        role_name = deployed_function["Role"].rsplit("/", 1)[1]
        assert role_name == f"stream-pipeline-dev-{function}"
        (policy_name,) = iam.list_role_policies(RoleName=role_name)["PolicyNames"]
        document = iam.get_role_policy(RoleName=role_name, PolicyName=policy_name)["PolicyDocument"]
        if isinstance(document, str):
            document = json.loads(document)
        expected = json.loads((project / ".chalice" / policies.policy_path("dev", function)).read_text())
        assert document == expected, function
    for function in app_shape.queue_functions:
        assert functions[arns.function_name(function)]["Timeout"] == 60

    # AND each event source mapping points at the provisioned stream or queue
    mappings: dict[str, list[dict[str, Any]]] = {}
    for mapping in lambda_client.list_event_source_mappings()["EventSourceMappings"]:
        mappings.setdefault(mapping["FunctionArn"].rsplit(":", 1)[1], []).append(mapping)
    assert set(mappings) == {arns.function_name(fn) for fn in (*app_shape.stream_functions,
                                                                 *app_shape.queue_functions)}
    for function, variable in app_shape.stream_functions.items():
        (mapping,) = mappings[arns.function_name(function)]
        assert mapping["EventSourceArn"] == recorded[variable], function
        assert mapping["StartingPosition"] == "TRIM_HORIZON"
    for function in app_shape.queue_functions:
        (mapping,) = mappings[arns.function_name(function)]
        assert mapping["EventSourceArn"] == outputs["IngestQueueArn"], function
        # Plain `chalice deploy` cannot set what infra/merge-template.yaml adds (the package path does).
        assert "ReportBatchItemFailures" not in (mapping.get("FunctionResponseTypes") or [])

    # WHEN the operator gives the deployed mappings the merge template's failure settings
    tuned = subprocess.run([sys.executable, "-m", "ops", "provision", "--stage", "dev", "--event-sources"],
                           cwd=project, env=env, capture_output=True, text=True, timeout=300)
    assert tuned.returncode == 0, tuned.stdout + tuned.stderr

    # THEN they carry the same settings as the package path's mappings
    for mapping in lambda_client.list_event_source_mappings()["EventSourceMappings"]:
        function = mapping["FunctionArn"].rsplit(":", 1)[1].removeprefix("stream-pipeline-dev-")
        if function in app_shape.stream_functions:
            assert mapping["BisectBatchOnFunctionError"] is True, function
            assert mapping["MaximumRetryAttempts"] == 10 and mapping["MaximumRecordAgeInSeconds"] == 3600
            assert mapping["DestinationConfig"] == {"OnFailure": {"Destination": outputs["StreamDlqArn"]}}
        else:
            assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"], function

    # AND the API throttling step names what it needs: the REST API moto could not create was never recorded
    # (tests/deploy/test_api_throttling.py applies it to an API Gateway stage in moto)
    throttled = subprocess.run([sys.executable, "-m", "ops", "provision", "--stage", "dev", "--api-throttling"],
                               cwd=project, env=env, capture_output=True, text=True, timeout=300)
    assert throttled.returncode == 1, throttled.stdout + throttled.stderr
    assert "run `chalice deploy --stage dev` first" in " ".join(throttled.stdout.split())
