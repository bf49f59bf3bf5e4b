"""`python -m ops provision`: the stack deployed in (in-process) moto, its names and ARNs recorded in a copy of
.chalice/config.json, the stage's IAM policies regenerated from them."""

from __future__ import annotations

import argparse
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from chalicelib import clients
from ops import policies, provision
from tests.deploy.conftest import CHALICE_DIR
from tooling.infrastructure import OUTPUT_VARIABLES, stack_name


def run_provision(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--stage", required=True)
    provision.add_arguments(parser)
    return provision.run(parser.parse_args(list(argv)))


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    """A copy of the real config (and its policies) with an operator's own choices in it."""
    chalice_dir = tmp_path / ".chalice"
    shutil.copytree(CHALICE_DIR / "policies", chalice_dir / "policies")
    config = json.loads((CHALICE_DIR / "config.json").read_text())
    config["tags"] = {"team": "data"}
    config["stages"]["prod"]["environment_variables"]["FANOUT_MAX_ATTEMPTS"] = "5"
    config["stages"]["prod"]["lambda_memory_size"] = 256
    path = chalice_dir / "config.json"
    path.write_text(json.dumps(config, indent=2) + "\n")
    return path


@pytest.fixture
def moto() -> Iterator[None]:
    clients.reset()
    with mock_aws():
        yield
    clients.reset()


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def stack_outputs(stage: str) -> dict[str, str]:
    stack = boto3.client("cloudformation").describe_stacks(StackName=stack_name(stage))["Stacks"][0]
    return {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}


def test_provision_records_the_stacks_names_and_arns_and_keeps_everything_else(
        moto: None, config_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN a config with an operator's settings   WHEN provision runs for prod
    before = load(config_path)
    assert run_provision("--stage", "prod", "--config", str(config_path)) == 0

    # THEN every SPEC variable names a resource that exists, as the stack reports it
    after = load(config_path)
    env = after["stages"]["prod"]["environment_variables"]
    outputs = stack_outputs("prod")
    for output, variable in OUTPUT_VARIABLES.items():
        assert env[variable] == outputs[output], variable
    dynamodb, sqs, events = boto3.client("dynamodb"), boto3.client("sqs"), boto3.client("events")
    users = dynamodb.describe_table(TableName=env["USERS_TABLE"])["Table"]
    assert users["LatestStreamArn"] == env["USERS_STREAM_ARN"]
    orders = dynamodb.describe_table(TableName=env["ORDERS_TABLE"])["Table"]
    assert orders["LatestStreamArn"] == env["ORDERS_STREAM_ARN"]
    assert [i["IndexName"] for i in orders["GlobalSecondaryIndexes"]] == ["status-index"]
    for table in ("USERS_BY_LOCATION_TABLE", "DEVICE_METADATA_TABLE"):
        dynamodb.describe_table(TableName=env[table])
    assert sqs.get_queue_url(QueueName=env["INGEST_QUEUE"])["QueueUrl"]
    for url in ("INGEST_DLQ_URL", "STREAM_DLQ_URL"):
        assert sqs.get_queue_attributes(QueueUrl=env[url], AttributeNames=["QueueArn"])["Attributes"]
    assert events.describe_event_bus(Name=env["EVENT_BUS_NAME"])["Name"] == "stream-pipeline-prod"

    # AND the operator's choices and every other key are untouched
    assert env["FANOUT_MAX_ATTEMPTS"] == "5" and env["API_AUTH"] == "iam"
    assert env["EVENT_SOURCE"] == "stream-pipeline.users"
    assert after["tags"] == {"team": "data"} and after["stages"]["prod"]["lambda_memory_size"] == 256
    assert after["stages"]["dev"] == before["stages"]["dev"]
    assert {k: v for k, v in after.items() if k != "stages"} == {k: v for k, v in before.items() if k != "stages"}

    # AND a readable summary names what was recorded
    printed = capsys.readouterr().out
    assert "USERS_STREAM_ARN" in printed and "policies/prod/api_handler.json" in printed
    assert "API routes: every one needs IAM (SigV4) (API_AUTH=iam)" in " ".join(printed.split())
    assert "--event-sources --api-throttling" in " ".join(printed.split())


def test_provision_regenerates_policies_naming_the_real_arns(moto: None, config_path: Path) -> None:
    assert run_provision("--stage", "prod", "--config", str(config_path)) == 0

    config = load(config_path)
    outputs = stack_outputs("prod")
    arns = policies.StageArns.from_environment("prod", config["stages"]["prod"]["environment_variables"])
    # ARNs derived from the recorded names are exactly what CloudFormation reports
    assert (arns.users_table, arns.users_by_location_table, arns.device_metadata_table, arns.orders_table) == (
        outputs["UsersTableArn"], outputs["UsersByLocationTableArn"], outputs["DeviceMetadataTableArn"],
        outputs["OrdersTableArn"])
    assert (arns.ingest_queue, arns.ingest_dlq, arns.stream_dlq, arns.event_bus) == (
        outputs["IngestQueueArn"], outputs["IngestDlqArn"], outputs["StreamDlqArn"], outputs["EventBusArn"])
    for function, settings in config["stages"]["prod"]["lambda_functions"].items():
        written = json.loads((config_path.parent / settings["iam_policy_file"]).read_text())
        assert written == policies.policy_document(function, arns)
    replicate = (config_path.parent / policies.policy_path("prod", "replicate_users")).read_text()
    assert outputs["UsersStreamArn"] in replicate and "1970-01-01T00:00:00.000" not in replicate


def test_provision_twice_changes_nothing_the_second_time(moto: None, config_path: Path) -> None:
    assert run_provision("--stage", "prod", "--config", str(config_path)) == 0
    first = config_path.read_text()
    first_policies = {p.name: p.read_text() for p in (config_path.parent / "policies" / "prod").iterdir()}

    assert run_provision("--stage", "prod", "--config", str(config_path)) == 0

    assert config_path.read_text() == first
    assert {p.name: p.read_text() for p in (config_path.parent / "policies" / "prod").iterdir()} == first_policies


def test_a_new_stage_is_created_with_iam_protected_writes(moto: None, config_path: Path) -> None:
    assert run_provision("--stage", "staging", "--config", str(config_path)) == 0

    stage = load(config_path)["stages"]["staging"]
    assert stage["environment_variables"]["API_AUTH"] == "iam"
    assert stage["environment_variables"]["USERS_TABLE"] == "stream-pipeline-staging-users"
    assert set(stage["lambda_functions"]) == set(policies.FUNCTION_ACCESS)
    assert (config_path.parent / "policies" / "staging" / "api_handler.json").is_file()


@pytest.mark.parametrize("value, said", [("none", "open to anyone"),
                                         ("IAM", "API_AUTH must be 'iam' (SigV4 on every route) or 'none'")])
def test_the_summary_says_when_a_stages_api_is_open_or_misconfigured(
        config_path: Path, value: str, said: str, capsys: pytest.CaptureFixture[str]) -> None:
    config = load(config_path)
    config["stages"]["prod"]["environment_variables"]["API_AUTH"] = value
    config_path.write_text(json.dumps(config))

    assert run_provision("--stage", "prod", "--config", str(config_path), "--policies-only") == 0

    assert said in " ".join(capsys.readouterr().out.split())


def test_policies_only_makes_no_aws_call_and_rewrites_the_policies(moto: None, config_path: Path) -> None:
    stale = config_path.parent / policies.policy_path("prod", "fanout_users")
    stale.write_text("{}\n")

    assert run_provision("--stage", "prod", "--config", str(config_path), "--policies-only") == 0

    assert boto3.client("cloudformation").describe_stacks()["Stacks"] == []
    env = load(config_path)["stages"]["prod"]["environment_variables"]
    assert json.loads(stale.read_text()) == policies.policy_document(
        "fanout_users", policies.StageArns.from_environment("prod", env))


def test_without_a_region_provision_fails_clearly_and_writes_nothing(
        moto: None, config_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config_path.parent / "no-such-aws-config"))
    before = config_path.read_text()

    assert run_provision("--stage", "prod", "--config", str(config_path)) == 1

    assert "no AWS region" in capsys.readouterr().out
    assert config_path.read_text() == before


def test_policies_only_for_an_unknown_stage_fails_naming_it(config_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    before = config_path.read_text()

    assert run_provision("--stage", "nope", "--config", str(config_path), "--policies-only") == 1

    assert "'nope' is not in" in capsys.readouterr().out
    assert config_path.read_text() == before
    assert not (config_path.parent / "policies" / "nope").exists()
