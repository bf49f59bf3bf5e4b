"""The operator CLI as the SPEC states it: `python -m ops <verb> --stage <stage>`, followed literally.

- a missing or unknown stage, or an unreadable config file, is a clear error (no traceback);
- the verbs take everything they need from the stage in `.chalice/config.json`: a process that only points
  at the emulator (`AWS_ENDPOINT_URL`, any credentials, no stage variables, no region) works the same way.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer

from chalicelib.dead_letters import DeadLetter, DeadLetterQueue
from chalicelib.stream.images import plain_item, typed_item
from ops.__main__ import main
from tests.ops.ops_support import put_items, user
from tests.support.events import insert, sqs_message
from tests.support.resources import StageResources
from tooling.infrastructure import deploy_stack, stage_environment

ROOT = Path(__file__).resolve().parents[2]
STAGE_VERBS = ("backfill", "verify", "redrive", "status")


@pytest.mark.parametrize("verb", STAGE_VERBS)
def test_an_unknown_stage_is_a_clear_error_naming_the_stages(verb: str, stage_config: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    # WHEN a verb is run on a stage the config does not have
    code = main([verb, "--stage", "nope", "--config", str(stage_config)])

    # THEN it exits non-zero with one line naming the stage and the stages there are (no traceback)
    err = capsys.readouterr().err
    assert code == 2
    assert f"python -m ops {verb}: error: stage 'nope' is not in {stage_config} (stages: test)" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("verb", STAGE_VERBS)
def test_a_missing_config_file_is_a_clear_error(verb: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nowhere.json"
    assert main([verb, "--stage", "dev", "--config", str(missing)]) == 2
    assert f"error: cannot read {missing}" in capsys.readouterr().err


def test_a_stage_lacking_a_variable_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"stages": {"half": {"environment_variables": {"USERS_TABLE": "t"}}}}))
    assert main(["status", "--stage", "half", "--config", str(config)]) == 2
    assert "error: environment variable USERS_STREAM_ARN is not set" in capsys.readouterr().err


def test_each_verb_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    for verb in ("provision", *STAGE_VERBS):
        with pytest.raises(SystemExit) as done:
            main([verb, "--help"])
        assert done.value.code == 0
        assert "--stage STAGE" in capsys.readouterr().out


def test_redrive_replays_through_the_consumers_with_only_the_config_naming_the_stage(
        aws: StageResources, stage_config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN letters of the fan-out, orders and ingest consumers, and a process whose environment does not
    # hold the stage's variables (an operator's shell: they are in .chalice/config.json only)
    alice = user(1)
    put_items(aws["UsersTable"], [alice])
    order = {"id": "o-1", "name": "desk", "status": "PENDING", "created_at": "2026-11-22T10:00:00.000Z",
             "items": [{"sku": "A-1", "quantity": Decimal("2"), "unit_price": Decimal("9.99")}]}
    put_items(aws["OrdersTable"], [order])
    sqs = boto3.client("sqs")
    DeadLetterQueue(sqs, aws["StreamDlqUrl"]).send([
        DeadLetter("fanout", "PutEvents failed after 3 attempt(s)", "ThrottlingException", 3, insert(alice)),
        DeadLetter("orders", "order o-1 could not be updated", "ThrottlingException", 4,
                   insert(order, key_names=("id",), table=aws["OrdersTable"]))])
    DeadLetterQueue(sqs, aws["IngestDlqUrl"]).send([
        DeadLetter("ingest", "throttled", "ThrottlingException", 1,
                   sqs_message({"user_id": "u-1", "device": "phone", "location": "Springfield"}))])
    for name in aws.env():
        monkeypatch.delenv(name, raising=False)

    # WHEN the operator redrives
    code = main(["redrive", "--stage", "test", "--config", str(stage_config), "--wait-seconds", "0"])

    # THEN every letter was applied: the event reached the subscriber, the order and the sighting are stored
    assert code == 0
    events = sqs.receive_message(QueueUrl=aws["SubscriberQueueUrl"], MaxNumberOfMessages=10).get("Messages", [])
    assert [json.loads(m["Body"])["detail"]["keys"] for m in events] == [{"email": alice["email"]}]
    dynamodb = boto3.client("dynamodb")
    stored = plain_item(dynamodb.get_item(TableName=aws["OrdersTable"], Key=typed_item({"id": "o-1"}))["Item"])
    assert stored["status"] == "PROCESSED" and stored["total"] == Decimal("19.98")
    sightings = [plain_item(i) for i in dynamodb.scan(TableName=aws["DeviceMetadataTable"])["Items"]]
    assert [s["user_id"] for s in sightings] == ["u-1"]
    # ... and the process environment is as it was
    assert not any(name in os.environ for name in aws.env())


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def emulator() -> Iterator[str]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def test_against_the_emulator_only_the_endpoint_and_any_credentials_are_needed(emulator: str,
                                                                              tmp_path: Path) -> None:
    # GIVEN a stage in the emulator, recorded in a config file, and a shell with only the endpoint and
    # dummy credentials (no region, no profile, no stage variables)
    cloudformation = boto3.client("cloudformation", endpoint_url=emulator, region_name="us-east-1",
                                  aws_access_key_id="x", aws_secret_access_key="x")
    variables = stage_environment(deploy_stack(cloudformation, "cli", poll=0.05))
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"stages": {"cli": {"environment_variables": variables}}}))
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("AWS_") and k not in variables and k != "MOTO_ACCOUNT_ID"}
    env.update(AWS_ENDPOINT_URL=emulator, AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="x",
               AWS_CONFIG_FILE=str(tmp_path / "no-aws-config"), AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"))

    def ops(verb: str, *options: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "ops", verb, "--stage", "cli", "--config", str(config), *options]
        return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)

    # WHEN status and verify run
    status = ops("status", "--wait-seconds", "0")
    verify = ops("verify", "--no-progress")

    # THEN they work against the stage's region (from its ARNs), as they would with a region configured
    assert status.returncode == 0, status.stderr
    assert "stream-pipeline-cli-users" in status.stdout
    assert verify.returncode == 0 and "no drift" in verify.stdout, verify.stderr


def test_an_unreachable_emulator_is_a_clear_error(tmp_path: Path, stage_config: Path) -> None:
    # GIVEN AWS_ENDPOINT_URL names a port nothing listens on (the local stack is not running)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ENDPOINT_URL=f"http://127.0.0.1:{free_port()}", AWS_ACCESS_KEY_ID="x",
               AWS_SECRET_ACCESS_KEY="x", AWS_DEFAULT_REGION="us-east-1", AWS_MAX_ATTEMPTS="1")
    command = [sys.executable, "-m", "ops", "verify", "--stage", "test", "--config", str(stage_config),
               "--no-progress"]

    # WHEN verify runs THEN it fails with one line saying it could not connect (no traceback)
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert "Could not connect to the endpoint URL" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("verb", ["verify", "backfill", "redrive"])
def test_a_stage_whose_resources_do_not_exist_is_a_clear_error(
        verb: str, aws: StageResources, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN a stage recorded in the config but never provisioned in this account
    variables = {name: value.replace("-test-", "-gone-").replace("-test", "-gone")
                 for name, value in aws.env().items()}
    for name in variables:
        monkeypatch.delenv(name, raising=False)
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"stages": {"gone": {"environment_variables": variables}}}))

    # WHEN a verb runs on it THEN it exits 1 with one line naming the missing resource, no traceback
    options = {"verify": ["--no-progress"], "backfill": ["--no-progress", "--checkpoint", str(tmp_path / "cp")],
               "redrive": ["--wait-seconds", "0"]}[verb]
    assert main([verb, "--stage", "gone", "--config", str(config), *options]) == 1
    captured = capsys.readouterr()
    assert "stream-pipeline-gone" in captured.out + captured.err or "stage gone provisioned" in captured.err
    assert "Traceback" not in captured.err


@pytest.mark.parametrize("options", [
    ["status", "--peek", "--visibility", "0"],     # a message hidden for 0 s comes straight back: peek never ends
    ["redrive", "--visibility", "0"],              # ... and redrive keeps receiving the letters it holds
    ["redrive", "--visibility", "-5"],
    ["redrive", "--visibility", "43201"],          # SQS's maximum is 12 hours
    ["redrive", "--limit", "0"],                   # would report "no dead letters" with letters waiting
    ["redrive", "--limit", "-1"],
    ["status", "--wait-seconds", "21"],            # SQS long polls at most 20 s
    ["redrive", "--wait-seconds", "-1"],
])
def test_out_of_range_numbers_are_usage_errors(options: list[str], stage_config: Path, aws: StageResources,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN a letter waiting in the ingest DLQ
    DeadLetterQueue(boto3.client("sqs"), aws["IngestDlqUrl"]).send([
        DeadLetter("ingest", "device: required", "InvalidMessage: device: required", 1,
                   sqs_message({"user_id": "u-1"}))])

    # WHEN a verb gets a number SQS cannot honour THEN argparse refuses it, naming the option, before any call
    verb, *rest = options
    with pytest.raises(SystemExit) as done:
        main([verb, "--stage", "test", "--config", str(stage_config), *rest])
    assert done.value.code == 2
    assert f"argument {rest[-2]}: " in capsys.readouterr().err


def test_the_stage_environment_is_restored_exactly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ops.stage_options import stage_environment

    # GIVEN a variable set but empty in the process, and one not set at all
    config = tmp_path / "config.json"
    stage = {"environment_variables": {"USERS_TABLE": "t", "ORDERS_TABLE": "o"}}
    config.write_text(json.dumps({"stages": {"s": stage}}))
    monkeypatch.setenv("USERS_TABLE", "")
    monkeypatch.delenv("ORDERS_TABLE", raising=False)

    # WHEN a verb runs THEN it sees the stage's values, and afterwards the process is as it was
    with stage_environment("s", config):
        assert (os.environ["USERS_TABLE"], os.environ["ORDERS_TABLE"]) == ("t", "o")
    assert os.environ["USERS_TABLE"] == "" and "ORDERS_TABLE" not in os.environ
