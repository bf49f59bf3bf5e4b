"""SPEC "Commands": against the local stack the operator verbs work the same way, and `make demo` reads well.

One `python -m local_stack` on free ports; each verb is `python -m ops <verb> --stage dev` in a subprocess
whose environment holds only `AWS_ENDPOINT_URL` and dummy credentials (what the README tells a user to set).
`provision` records into a copy of `.chalice/config.json`, never the committed file.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import CONFIG, ROOT, STAGE_VARIABLES, LocalStackProcess, eventually, running


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStackProcess]:
    yield from running()


def shell_env(stack: LocalStackProcess, **extra: str) -> dict[str, str]:
    """An operator's shell pointed at the stack: endpoint and any credentials, no region, no stage variables."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("AWS_") and k != "COLUMNS" and k not in STAGE_VARIABLES}
    env.update(AWS_ENDPOINT_URL=stack.emulator, AWS_ACCESS_KEY_ID="any", AWS_SECRET_ACCESS_KEY="any",
               AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull, **extra)
    return env


def ops(stack: LocalStackProcess, *argv: str, **extra_env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ops", *argv], cwd=ROOT, env=shell_env(stack, **extra_env),
                          capture_output=True, text=True, timeout=120)


def test_every_verb_works_against_the_local_stack(stack: LocalStackProcess, tmp_path: Path) -> None:
    committed = CONFIG.read_text()
    outputs = stack.outputs()
    # GIVEN a user replicated by the stack, an orphan planted in the target, and an invalid device message
    assert stack.http("POST", "/users", {"email": "ops.e2e@example.com", "state": "NY", "city": "Albany",
                                         "zipcode": "12207"})[0] == 201
    dynamodb, sqs = stack.client("dynamodb"), stack.client("sqs")
    target = outputs["UsersByLocationTable"]
    assert eventually(lambda: dynamodb.scan(TableName=target)["Count"] == 1, 15)
    dynamodb.put_item(TableName=target, Item={"state": {"S": "ZZ"}, "city_email": {"S": "Nowhere#ghost@example.com"},
                                              "city": {"S": "Nowhere"}, "email": {"S": "ghost@example.com"},
                                              "active": {"BOOL": True}})
    queue = sqs.get_queue_url(QueueName=outputs["IngestQueueName"])["QueueUrl"]
    sqs.send_message(QueueUrl=queue, MessageBody=json.dumps({"user_id": "u-1"}))
    dlq = outputs["IngestDlqUrl"]
    assert eventually(lambda: sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["ApproximateNumberOfMessages"])
                      ["Attributes"]["ApproximateNumberOfMessages"] == "1", 15)

    # WHEN the operator runs each verb on stage dev
    status = ops(stack, "status", "--stage", "dev", "--peek", "--wait-seconds", "0")
    drift = ops(stack, "verify", "--stage", "dev", "--no-progress")
    fixed = ops(stack, "verify", "--stage", "dev", "--no-progress", "--fix")
    clean = ops(stack, "verify", "--stage", "dev", "--no-progress")
    backfill = ops(stack, "backfill", "--stage", "dev", "--no-progress", "--checkpoint", str(tmp_path / "cp.json"))
    redrive = ops(stack, "redrive", "--stage", "dev", "--wait-seconds", "0")

    # THEN each does its job with the SPEC's exit codes
    assert status.returncode == 0, status.stdout + status.stderr
    assert "stream-pipeline-dev-users" in status.stdout and "device: required; location: required" in status.stdout
    assert drift.returncode == 1 and "orphaned" in drift.stdout, drift.stdout + drift.stderr
    assert fixed.returncode == 0 and clean.returncode == 0 and "no drift" in clean.stdout, clean.stdout
    assert backfill.returncode == 0 and "backfill complete" in backfill.stdout, backfill.stderr
    assert redrive.returncode == 1 and "invalid" in redrive.stdout, redrive.stdout + redrive.stderr
    assert "Traceback" not in "".join(p.stderr for p in (status, drift, fixed, clean, backfill, redrive))
    assert CONFIG.read_text() == committed


def test_provision_records_the_stacks_resources_into_the_given_config(stack: LocalStackProcess,
                                                                     tmp_path: Path) -> None:
    # GIVEN a copy of the committed config (provision must never rewrite the committed one in a test)
    committed = CONFIG.read_text()
    (tmp_path / ".chalice").mkdir()
    config = tmp_path / ".chalice" / "config.json"
    shutil.copy(CONFIG, config)

    # WHEN provisioning stage dev against the stack (provision names its region: it may create a stage)
    done = ops(stack, "provision", "--stage", "dev", "--config", str(config), AWS_DEFAULT_REGION="us-east-1")

    # THEN the copy names the stack's resources (its stream ARNs are new each start), policies lie beside it,
    # and the committed config is untouched
    assert done.returncode == 0, done.stdout + done.stderr
    recorded = json.loads(config.read_text())["stages"]["dev"]["environment_variables"]
    assert recorded["USERS_STREAM_ARN"] == stack.outputs()["UsersStreamArn"]
    assert recorded["API_AUTH"] == "none"
    assert (tmp_path / ".chalice" / "policies" / "dev" / "replicate_users.json").is_file()
    assert CONFIG.read_text() == committed


def test_demo_output_is_readable_when_piped(stack: LocalStackProcess) -> None:
    # WHEN `make demo`'s command runs with its output piped (a CI log), no terminal width given
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k != "COLUMNS"}
    result = subprocess.run([sys.executable, "-m", "local_stack.demo", "--api", stack.api, "--emulator",
                             stack.emulator], cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)

    # THEN every flow arrived and the tables show whole e-mails and whole timestamps
    assert result.returncode == 0, result.stdout + result.stderr
    emails = re.findall(r"\b[a-z]+\.\d{6}-[0-9a-f]{6}@example\.com\b", result.stdout)
    assert len(emails) >= 4 + 7 + 1, result.stdout  # target table, fan-out events, device message
    assert re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", result.stdout), result.stdout


def test_local_stack_on_an_unknown_stage_is_a_clear_error() -> None:
    # WHEN the local stack is started on a stage the config does not have
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    done = subprocess.run([sys.executable, "-m", "local_stack", "--stage", "qa", "--emulator-port", "0",
                           "--api-port", "0"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)

    # THEN it exits 2 at once with one line naming the stage and the stages there are, and starts nothing
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    assert "stage 'qa' is not in" in output and "(stages: dev, prod)" in output
    assert "Traceback" not in output and "emulator" not in output


def test_two_demos_at_once_each_find_their_own_events(stack: LocalStackProcess) -> None:
    # WHEN two `make demo`s run at the same moment against one stack (one subscriber queue for both)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    runs = [subprocess.Popen([sys.executable, "-m", "local_stack.demo", "--api", stack.api, "--emulator",
                              stack.emulator], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True) for _ in range(2)]
    outputs = [run.communicate(timeout=120)[0] for run in runs]

    # THEN both see every flow of their own, under their own e-mails
    assert [run.returncode for run in runs] == [0, 0], "\n".join(outputs)
    suffixes = {re.search(r"demo run (\S+)", output)[1] for output in outputs}  # type: ignore[index]
    assert len(suffixes) == 2, outputs
