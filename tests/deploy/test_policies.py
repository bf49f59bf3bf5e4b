"""Every committed IAM policy: parsed, free of wildcards, naming only its own stage's resources, and in step
with the stage's recorded ARNs and with the functions app.py declares. No AWS."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ops import policies
from tests.deploy.conftest import CHALICE_DIR, AppShape

STAGES = ("dev", "prod")
LIST_STREAMS_ONLY = ["dynamodb:ListStreams"]


def statements(document: dict[str, Any]) -> list[dict[str, Any]]:
    found = document["Statement"]
    return found if isinstance(found, list) else [found]


def as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def committed_policy(config: dict[str, Any], stage: str, function: str) -> dict[str, Any]:
    relative = config["stages"][stage]["lambda_functions"][function]["iam_policy_file"]
    return json.loads((CHALICE_DIR / relative).read_text())


def stage_env(config: dict[str, Any], stage: str) -> dict[str, str]:
    return config["stages"][stage]["environment_variables"]


def belongs_to_stage(resource: str, arns: policies.StageArns) -> bool:
    """An ARN in the stage's partition, region and account, naming a resource of `stream-pipeline-<stage>`
    (S3 ARNs name no region or account: the statement's `s3:ResourceAccount` condition pins the account)."""
    parts = resource.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn":
        return False
    _, partition, service, region, account, rest = parts
    if service == "s3":
        bucket = rest.split("/")[0]
        return (partition, region, account) == (arns.partition, "", "") and bucket.startswith(
            f"{policies.APP_NAME}-{arns.stage}-")
    if (partition, region, account) != (arns.partition, arns.region, arns.account):
        return False
    prefix = f"{policies.APP_NAME}-{arns.stage}"
    name = {
        "dynamodb": rest.removeprefix("table/").split("/")[0],
        "sqs": rest,
        "events": rest.removeprefix("event-bus/"),
        "logs": rest.removeprefix("log-group:/aws/lambda/").removesuffix(":*"),
    }.get(service, "")
    return name == prefix or name.startswith(prefix + "-")


# --- the configuration -----------------------------------------------------------------------

def test_autogen_policy_is_off_everywhere(chalice_config: dict[str, Any]) -> None:
    assert chalice_config["autogen_policy"] is False

    def settings(node: Any) -> list[Any]:
        if isinstance(node, dict):
            found = [node["autogen_policy"]] if "autogen_policy" in node else []
            return found + [v for child in node.values() for v in settings(child)]
        return []

    assert set(settings(chalice_config)) == {False}


@pytest.mark.parametrize("stage", STAGES)
def test_every_function_of_app_py_has_its_own_policy_file_and_no_other_is_configured(
        stage: str, chalice_config: dict[str, Any], app_shape: AppShape) -> None:
    configured = chalice_config["stages"][stage]["lambda_functions"]
    with_policy = {fn for fn, values in configured.items() if "iam_policy_file" in values}
    assert with_policy == app_shape.functions
    assert set(policies.FUNCTION_ACCESS) == app_shape.functions
    files = {configured[fn]["iam_policy_file"] for fn in with_policy}
    assert len(files) == len(with_policy), "two functions share a policy file"
    for function in with_policy:
        assert configured[function]["iam_policy_file"] == policies.policy_path(stage, function)
        assert (CHALICE_DIR / policies.policy_path(stage, function)).is_file()


def test_ingest_function_timeout_is_60_seconds(chalice_config: dict[str, Any], app_shape: AppShape) -> None:
    for function in app_shape.queue_functions:
        assert chalice_config["lambda_functions"][function]["lambda_timeout"] == 60


@pytest.mark.parametrize("stage", STAGES)
def test_committed_policies_are_what_provision_generates_from_the_recorded_arns(
        stage: str, chalice_config: dict[str, Any], app_shape: AppShape) -> None:
    arns = policies.StageArns.from_environment(stage, stage_env(chalice_config, stage))
    for function in app_shape.functions:
        relative = policies.policy_path(stage, function)
        assert (CHALICE_DIR / relative).read_text() == policies.render(policies.policy_document(function, arns)), (
            f"{relative} is stale: run `python -m ops provision --stage {stage} --policies-only`")


# --- each policy document --------------------------------------------------------------------

@pytest.mark.parametrize("stage", STAGES)
def test_no_wildcard_action_and_the_only_wildcard_resource_is_list_streams(
        stage: str, chalice_config: dict[str, Any], app_shape: AppShape) -> None:
    arns = policies.StageArns.from_environment(stage, stage_env(chalice_config, stage))
    for function in app_shape.functions:
        document = committed_policy(chalice_config, stage, function)
        assert document["Version"] == "2012-10-17"
        for statement in statements(document):
            assert statement["Effect"] == "Allow"
            assert "NotAction" not in statement and "NotResource" not in statement, function
            actions = as_list(statement["Action"])
            assert all("*" not in action and action.count(":") == 1 for action in actions), (function, actions)
            for resource in as_list(statement["Resource"]):
                if resource == "*":
                    # ListStreams has no resource type in IAM: the one action that cannot be scoped.
                    assert sorted(actions) == LIST_STREAMS_ONLY, (function, statement)
                elif resource.startswith("arn:aws:s3:::"):
                    # Objects under a prefix of the stage's bucket, in the stage's account only.
                    assert resource.endswith("/*") and "*" not in resource.removesuffix("/*"), (function, resource)
                    assert statement["Condition"] == {"StringEquals": {"s3:ResourceAccount": arns.account}}
                else:
                    # Log streams of the function's own group are the only pattern: `...:log-group:<name>:*`.
                    assert "*" not in resource.removesuffix(":*") and (
                        not resource.endswith(":*") or ":log-group:" in resource), (function, resource)


@pytest.mark.parametrize("stage", STAGES)
def test_every_resource_belongs_to_its_own_stage(stage: str, chalice_config: dict[str, Any],
                                                 app_shape: AppShape) -> None:
    arns = policies.StageArns.from_environment(stage, stage_env(chalice_config, stage))
    others = [s for s in chalice_config["stages"] if s != stage]
    for function in app_shape.functions:
        text = json.dumps(committed_policy(chalice_config, stage, function))
        for other in others:
            assert f"{policies.APP_NAME}-{other}-" not in text and f"{policies.APP_NAME}-{other}\"" not in text
        for statement in statements(committed_policy(chalice_config, stage, function)):
            for resource in as_list(statement["Resource"]):
                assert resource == "*" or belongs_to_stage(resource, arns), (function, resource)


@pytest.mark.parametrize("stage", STAGES)
def test_each_function_writes_logs_only_to_its_own_log_group(stage: str, chalice_config: dict[str, Any],
                                                             app_shape: AppShape) -> None:
    arns = policies.StageArns.from_environment(stage, stage_env(chalice_config, stage))
    for function in app_shape.functions:
        log_statements = [s for s in statements(committed_policy(chalice_config, stage, function))
                          if any(a.startswith("logs:") for a in as_list(s["Action"]))]
        assert [as_list(s["Resource"]) for s in log_statements] == [[arns.log_group(function)]]


def granted(document: dict[str, Any]) -> dict[str, set[str]]:
    """action → resources."""
    found: dict[str, set[str]] = {}
    for statement in statements(document):
        for action in as_list(statement["Action"]):
            found.setdefault(action, set()).update(as_list(statement["Resource"]))
    return found


def test_prod_access_map_matches_what_each_function_does(chalice_config: dict[str, Any]) -> None:
    arns = policies.StageArns.from_environment("prod", stage_env(chalice_config, "prod"))
    api = granted(committed_policy(chalice_config, "prod", "api_handler"))
    assert api["dynamodb:PutItem"] == {arns.users_table, arns.orders_table}
    assert api["dynamodb:Query"] == {arns.users_by_location_table, arns.orders_table + "/index/status-index"}
    assert not any(a.startswith(("sqs:", "events:")) or a in (*policies.STREAM_READ, "dynamodb:ListStreams")
                   for a in api)

    replicate = granted(committed_policy(chalice_config, "prod", "replicate_users"))
    assert replicate["dynamodb:BatchWriteItem"] == {arns.users_by_location_table}
    assert replicate["dynamodb:GetRecords"] == {arns.users_stream}
    assert replicate["sqs:SendMessage"] == replicate["sqs:GetQueueAttributes"] == {arns.stream_dlq}
    assert replicate["s3:PutObject"] == {arns.dead_letter_bucket + "/replication/*"}

    fanout = granted(committed_policy(chalice_config, "prod", "fanout_users"))
    assert fanout["events:PutEvents"] == {arns.event_bus}
    assert fanout["sqs:SendMessage"] == {arns.stream_dlq}
    assert fanout["s3:PutObject"] == {arns.dead_letter_bucket + "/fanout/*"}
    assert not any(a.startswith("dynamodb:") and a not in {*policies.STREAM_READ, "dynamodb:ListStreams"}
                   for a in fanout)

    ingest = granted(committed_policy(chalice_config, "prod", "ingest_device_metadata"))
    assert ingest["sqs:DeleteMessage"] == ingest["sqs:ReceiveMessage"] == {arns.ingest_queue}
    assert ingest["sqs:SendMessage"] == {arns.ingest_dlq}
    assert ingest["sqs:GetQueueAttributes"] == {arns.ingest_queue, arns.ingest_dlq}
    assert ingest["dynamodb:BatchWriteItem"] == {arns.device_metadata_table}
    assert ingest["s3:PutObject"] == {arns.dead_letter_bucket + "/ingest/*"}

    orders = granted(committed_policy(chalice_config, "prod", "process_orders"))
    assert orders["dynamodb:UpdateItem"] == {arns.orders_table}
    assert orders["dynamodb:GetRecords"] == {arns.orders_stream}
    assert orders["sqs:SendMessage"] == {arns.stream_dlq}
    assert orders["s3:PutObject"] == {arns.dead_letter_bucket + "/orders/*"}
    # no function reads or deletes letters: only the operator's redrive role does
    assert not any(a in ("s3:GetObject", "s3:DeleteObject") for fn in (replicate, fanout, ingest, orders) for a in fn)


# --- the operator's policy for `ops redrive` --------------------------------------------------

@pytest.mark.parametrize("stage", STAGES)
def test_the_committed_operator_policy_is_what_provision_generates_and_names_only_the_stage(
        stage: str, chalice_config: dict[str, Any]) -> None:
    arns = policies.StageArns.from_environment(stage, stage_env(chalice_config, stage))
    path = CHALICE_DIR / policies.policy_path(stage, policies.OPERATOR_REDRIVE)
    document = json.loads(path.read_text())
    assert path.read_text() == policies.render(policies.operator_policy_document(policies.OPERATOR_REDRIVE, arns))
    for statement in statements(document):
        assert statement["Effect"] == "Allow" and all("*" not in a for a in as_list(statement["Action"]))
        for resource in as_list(statement["Resource"]):
            assert belongs_to_stage(resource, arns), resource
    operator = granted(document)
    assert operator["s3:GetObject"] == operator["s3:DeleteObject"] == {arns.dead_letter_bucket + "/*"}
    assert operator["sqs:DeleteMessage"] == {arns.stream_dlq, arns.ingest_dlq}
    assert "s3:PutObject" not in operator and "sqs:SendMessage" not in operator  # redrive never writes letters


# --- deriving ARNs from a stage's variables: malformed inputs -----------------------------------

def test_stage_arns_reject_a_queue_in_another_account(chalice_config: dict[str, Any]) -> None:
    env = dict(stage_env(chalice_config, "prod"))
    env["STREAM_DLQ_URL"] = "https://sqs.us-east-1.amazonaws.com/999999999999/stream-pipeline-prod-stream-dlq"
    with pytest.raises(ValueError, match="STREAM_DLQ_URL is in account 999999999999"):
        policies.StageArns.from_environment("prod", env)


def test_stage_arns_reject_streams_in_different_regions(chalice_config: dict[str, Any]) -> None:
    env = dict(stage_env(chalice_config, "prod"))
    env["ORDERS_STREAM_ARN"] = env["ORDERS_STREAM_ARN"].replace("us-east-1", "eu-west-1")
    with pytest.raises(ValueError, match="ORDERS_STREAM_ARN is in"):
        policies.StageArns.from_environment("prod", env)


@pytest.mark.parametrize("variable, value, reason", [
    ("USERS_STREAM_ARN", "", "USERS_STREAM_ARN is not set"),
    ("USERS_STREAM_ARN", "arn:aws:dynamodb:us-east-1:123456789012:table/t", "not a DynamoDB stream ARN"),
    ("INGEST_DLQ_URL", "stream-pipeline-prod-ingest-dlq", "INGEST_DLQ_URL is not a queue URL"),
    ("EVENT_BUS_NAME", "  ", "EVENT_BUS_NAME is not set"),
    ("DEAD_LETTER_BUCKET", "", "DEAD_LETTER_BUCKET is not set"),
])
def test_stage_arns_name_the_variable_that_is_off(chalice_config: dict[str, Any], variable: str, value: str,
                                                  reason: str) -> None:
    env = dict(stage_env(chalice_config, "prod"))
    env[variable] = value
    with pytest.raises(ValueError, match=reason):
        policies.StageArns.from_environment("prod", env)
