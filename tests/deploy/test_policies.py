"""Every IAM policy of the project — each file under .chalice/policies/, what ops/policies.py generates, the
policies in infra/template.yaml and in `chalice package` output — checked against the SPEC's rules: no `*`
action, `*` as a resource only for actions without a resource type (with their condition key where one
exists). The committed files also name only their own stage's resources and are in step with the stage's
recorded ARNs and with the functions app.py declares. No AWS."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ops import policies
from tests.deploy.conftest import CHALICE_DIR, INFRA_TEMPLATE, AppShape, Package
from tests.deploy.test_data_at_rest import parse

STAGES = ("dev", "prod")
POLICY_FILES = sorted((CHALICE_DIR / policies.POLICIES_DIR).rglob("*.json"))

# Actions IAM gives no resource type: `*` is the only resource they accept. Where the service offers a
# condition key that narrows them instead, a statement granting them on `*` must use it.
UNSCOPED_ACTIONS: dict[str, str | None] = {
    "dynamodb:ListStreams": None,
    "cloudwatch:PutMetricData": "cloudwatch:namespace",
    "xray:PutTraceSegments": None,
    "xray:PutTelemetryRecords": None,
    "xray:GetSamplingRules": None,
    "xray:GetSamplingTargets": None,
}
ACTION = re.compile(r"^[a-z0-9-]+:[A-Za-z0-9]+$")  # service:Name, no wildcard of any kind
# The patterns that name a set of a named resource's children: a log group's streams, a bucket's objects.
SCOPED_PATTERNS = (re.compile(r"^arn:[a-z-]+:logs:[a-z0-9-]+:\d{12}:log-group:[^*]+:\*$"),
                   re.compile(r"^arn:[a-z-]+:s3:::[a-z0-9.-]+/[^*]*\*$"))
CONFUSED_DEPUTY_KEYS = {"aws:SourceArn", "aws:SourceAccount", "aws:SourceOwner"}


def statements(document: dict[str, Any]) -> list[dict[str, Any]]:
    found = document["Statement"]
    return found if isinstance(found, list) else [found]


def as_list(value: Any) -> list[Any]:
    """An IAM field that is one value or a list of them (a template's intrinsic is one value)."""
    return list(value) if isinstance(value, list) else [value]


def committed_policy(config: dict[str, Any], stage: str, function: str) -> dict[str, Any]:
    relative = config["stages"][stage]["lambda_functions"][function]["iam_policy_file"]
    return json.loads((CHALICE_DIR / relative).read_text())


def stage_env(config: dict[str, Any], stage: str) -> dict[str, str]:
    return config["stages"][stage]["environment_variables"]


def belongs_to_stage(resource: str, arns: policies.StageArns) -> bool:
    """An ARN in the stage's partition, region and account (S3's have neither), naming a resource of
    `stream-pipeline-<stage>`."""
    parts = resource.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn":
        return False
    _, partition, service, region, account, rest = parts
    scope = ("", "") if service == "s3" else (arns.region, arns.account)
    if (partition, region, account) != (arns.partition, *scope):
        return False
    prefix = f"{policies.APP_NAME}-{arns.stage}"
    name = {
        "dynamodb": rest.removeprefix("table/").split("/")[0],
        "sqs": rest,
        "events": rest.removeprefix("event-bus/"),
        "logs": rest.removeprefix("log-group:/aws/lambda/").removesuffix(":*"),
        "s3": rest.split("/")[0],
    }.get(service, "")
    return name == prefix or name.startswith(prefix + "-")


def condition_keys(statement: dict[str, Any]) -> set[str]:
    return {key for operator in (statement.get("Condition") or {}).values() for key in (operator or {})}


def scoped_wildcard(resource: str) -> bool:
    """A `*` that names the children of one named resource: a log group's streams, a bucket's objects
    (in a template, the parent may be an intrinsic: `${Letters.Arn}/*`)."""
    if any(pattern.match(resource) for pattern in SCOPED_PATTERNS):
        return True
    return resource.count("*") == 1 and re.fullmatch(r".*\$\{[A-Za-z0-9.:]+\}(/[^*${}]*\*|:\*)", resource) is not None


def resource_text(resource: Any) -> str | None:
    """A resource as text (an ARN, `*`, a Fn::Sub string); None for a Ref or GetAtt (one named resource)."""
    if isinstance(resource, str):
        return resource
    if isinstance(resource, dict) and "Fn::Sub" in resource:
        sub = resource["Fn::Sub"]
        return str(sub[0] if isinstance(sub, list) else sub)
    if isinstance(resource, dict) and "Fn::Join" in resource:
        separator, parts = resource["Fn::Join"]
        return separator.join(part if isinstance(part, str) else "${x}" for part in parts)
    return None


def findings(document: dict[str, Any], kind: str = "identity") -> list[str]:
    """What breaks the SPEC's IAM rules in a policy document, one line each. `kind`: "identity" (a role's
    policy), "resource" (a queue's, bucket's, topic's: its Principal too) or "trust" (who may assume a role).
    Deny statements only take away (the TLS-only bucket policy): their wildcards are fine."""
    found: list[str] = []
    for index, statement in enumerate(statements(document)):
        where = statement.get("Sid") or f"statement {index}"
        if statement.get("Effect") != "Allow":
            continue
        if {"NotAction", "NotResource", "NotPrincipal"} & set(statement):
            found.append(f"{where}: NotAction/NotResource/NotPrincipal allows everything it does not name")
            continue
        actions = as_list(statement.get("Action", []))
        found += [f"{where}: wildcard action {a!r}" for a in actions if not ACTION.match(str(a))]
        if kind != "trust":
            resources = as_list(statement.get("Resource", []))
            if not resources:
                found.append(f"{where}: no Resource")
            for resource in resources:
                text = resource_text(resource)
                if text == "*":
                    typed = sorted(a for a in actions if a not in UNSCOPED_ACTIONS)
                    if typed:
                        found.append(f"{where}: `*` resource for {typed}, which IAM can scope to a resource")
                    found += [f"{where}: {a} on `*` without its {UNSCOPED_ACTIONS[a]} condition" for a in actions
                              if UNSCOPED_ACTIONS.get(a) and UNSCOPED_ACTIONS[a] not in condition_keys(statement)]
                elif text is not None and "*" in text and not scoped_wildcard(text):
                    found.append(f"{where}: wildcard resource {text!r}")
        if kind != "identity":
            principal = statement.get("Principal")
            anyone = principal == "*" or (isinstance(principal, dict) and "*" in as_list(principal.get("AWS", [])))
            if anyone and (kind == "trust" or not statement.get("Condition")):
                found.append(f"{where}: allows anyone (Principal *)")
            services = as_list(principal.get("Service", [])) if isinstance(principal, dict) else []
            if kind == "resource" and services and not CONFUSED_DEPUTY_KEYS & condition_keys(statement):
                found.append(f"{where}: {services} may act for anyone's resource (no aws:SourceArn/SourceAccount)")
    return found


def template_policies(template: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(where, kind, document) of every policy document a CloudFormation template declares."""
    def walk(where: str, node: Any, kind: str) -> Iterator[tuple[str, str, dict[str, Any]]]:
        if isinstance(node, dict) and "Statement" in node:
            yield where, kind, node
        elif isinstance(node, dict):
            for key, value in node.items():
                yield from walk(f"{where}.{key}", value, "trust" if key == "AssumeRolePolicyDocument" else kind)
        elif isinstance(node, list):
            for index, value in enumerate(node):
                yield from walk(f"{where}[{index}]", value, kind)

    for name, resource in template["Resources"].items():
        kind = "identity" if resource["Type"].startswith("AWS::IAM::") else "resource"
        yield from walk(name, resource.get("Properties") or {}, kind)


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

def policy_file_id(path: Path) -> str:
    return str(path.relative_to(CHALICE_DIR))


def test_every_policy_file_names_only_its_stages_resources(chalice_config: dict[str, Any]) -> None:
    # Functions' files and any other (an operator's): each under policies/<stage>/ of a configured stage.
    assert len(POLICY_FILES) >= len(chalice_config["stages"]) * len(policies.FUNCTION_ACCESS)
    for path in POLICY_FILES:
        stage = path.relative_to(CHALICE_DIR / policies.POLICIES_DIR).parts[0]
        assert stage in chalice_config["stages"], f"{policy_file_id(path)}: no stage {stage} is configured"
        arns = policies.StageArns.from_environment(stage, stage_env(chalice_config, stage))
        for statement in statements(json.loads(path.read_text())):
            for resource in as_list(statement["Resource"]):
                assert resource == "*" or belongs_to_stage(resource, arns), (policy_file_id(path), resource)


@pytest.mark.parametrize("path", POLICY_FILES, ids=policy_file_id)
def test_every_policy_file_follows_the_iam_rules(path: Path) -> None:
    document = json.loads(path.read_text())
    assert document["Version"] == "2012-10-17"
    assert statements(document) and all(s["Effect"] == "Allow" for s in statements(document))
    assert findings(document) == []


@pytest.mark.parametrize("stage", STAGES)
def test_the_only_unscoped_grant_today_is_list_streams(stage: str, chalice_config: dict[str, Any]) -> None:
    unscoped = {action for function in chalice_config["stages"][stage]["lambda_functions"]
                for statement in statements(committed_policy(chalice_config, stage, function))
                if "*" in as_list(statement["Resource"]) for action in as_list(statement["Action"])}
    assert unscoped == {"dynamodb:ListStreams"}


def test_what_ops_generates_follows_the_iam_rules_for_any_stage(chalice_config: dict[str, Any]) -> None:
    # Another partition, region and account than the committed files: the generator, not its output.
    env = {name: value.replace("arn:aws:", "arn:aws-cn:").replace("us-east-1", "cn-north-1")
           .replace("123456789012", "210987654321").replace("-prod", "-qa")
           for name, value in stage_env(chalice_config, "prod").items()}
    arns = policies.StageArns.from_environment("qa", env)
    for function in policies.FUNCTION_ACCESS:
        document = policies.policy_document(function, arns)
        assert findings(document) == [], function
        for statement in statements(document):
            assert all(r == "*" or belongs_to_stage(r, arns) for r in as_list(statement["Resource"])), statement


def test_the_infrastructure_templates_policies_follow_the_iam_rules() -> None:
    found = list(template_policies(parse(INFRA_TEMPLATE.read_text())))
    assert "SubscriberQueuePolicy.PolicyDocument" in {where for where, _, _ in found}
    assert {where: findings(document, kind) for where, kind, document in found if findings(document, kind)} == {}


@pytest.mark.parametrize("stage", STAGES)
def test_the_packaged_templates_policies_follow_the_iam_rules(stage: str, request: pytest.FixtureRequest,
                                                              app_shape: AppShape) -> None:
    package: Package = request.getfixturevalue(f"{stage}_package")
    found = list(template_policies(package.cloudformation))
    kinds = [kind for _, kind, _ in found]
    assert kinds.count("identity") == kinds.count("trust") == len(app_shape.functions)
    assert {where: findings(document, kind) for where, kind, document in found if findings(document, kind)} == {}


# --- the rules catch what they are for ------------------------------------------------------------

ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/stream-pipeline-prod-users"


def allow(action: Any, resource: Any, **extra: Any) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": action, "Resource": resource,
                                                    **extra}]}


@pytest.mark.parametrize("document, finding", [
    (allow("*", ARN), "wildcard action '*'"),
    (allow("dynamodb:*", ARN), "wildcard action 'dynamodb:*'"),
    (allow(["dynamodb:GetItem", "dynamodb:Get*"], ARN), "wildcard action 'dynamodb:Get*'"),
    (allow("dynamodb:*Item", ARN), "wildcard action"),
    (allow("dynamodb:GetItem", "*"), "`*` resource for ['dynamodb:GetItem']"),
    (allow(["dynamodb:ListStreams", "dynamodb:GetRecords"], "*"), "`*` resource for ['dynamodb:GetRecords']"),
    (allow("dynamodb:GetItem", "arn:aws:dynamodb:us-east-1:123456789012:table/*"), "wildcard resource"),
    (allow("sqs:SendMessage", "arn:aws:sqs:us-east-1:123456789012:stream-pipeline-*"), "wildcard resource"),
    (allow("s3:GetObject", "arn:aws:s3:::*/letters/*"), "wildcard resource"),
    (allow("logs:PutLogEvents", "arn:aws:logs:us-east-1:123456789012:log-group:*"), "wildcard resource"),
    (allow("cloudwatch:PutMetricData", "*"), "cloudwatch:PutMetricData on `*` without its cloudwatch:namespace"),
    (allow("cloudwatch:PutMetricData", "*", Condition={"StringEquals": {"aws:RequestedRegion": "us-east-1"}}),
     "cloudwatch:PutMetricData on `*` without"),
    ({"Statement": {"Effect": "Allow", "NotAction": "iam:*", "Resource": ARN}}, "NotAction/NotResource"),
    ({"Statement": [{"Effect": "Allow", "Action": "dynamodb:GetItem", "NotResource": ARN}]}, "NotAction/NotResource"),
    ({"Statement": [{"Effect": "Allow", "Action": "dynamodb:GetItem"}]}, "no Resource"),
    (allow("s3:GetObject", {"Fn::Sub": "arn:${AWS::Partition}:s3:::*"}), "wildcard resource"),
])
def test_the_identity_rules_find_each_breach(document: dict[str, Any], finding: str) -> None:
    (found,) = findings(document)
    assert finding in found, found


@pytest.mark.parametrize("document", [
    allow("dynamodb:ListStreams", "*"),
    allow(["xray:PutTraceSegments", "xray:PutTelemetryRecords"], "*"),
    allow("cloudwatch:PutMetricData", "*", Condition={"StringEquals": {"cloudwatch:namespace": "stream-pipeline"}}),
    allow("logs:PutLogEvents", "arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/stream-pipeline-prod:*"),
    allow(["s3:GetObject", "s3:PutObject"], "arn:aws:s3:::stream-pipeline-prod-dead-letters/*"),
    allow(["s3:GetObject"], "arn:aws:s3:::stream-pipeline-prod-dead-letters/letters/*"),
    allow("s3:PutObject", {"Fn::Sub": "${Letters.Arn}/*"}),
    allow("sqs:SendMessage", {"Fn::GetAtt": ["Queue", "Arn"]}),
    {"Statement": [{"Effect": "Deny", "Action": "*", "Resource": "*"}]},  # a Deny only takes away
])
def test_the_identity_rules_accept_what_the_spec_allows(document: dict[str, Any]) -> None:
    assert findings(document) == []


@pytest.mark.parametrize("statement, finding", [
    ({"Principal": "*"}, "allows anyone"),
    ({"Principal": {"AWS": "*"}}, "allows anyone"),
    ({"Principal": {"Service": "events.amazonaws.com"}}, "no aws:SourceArn/SourceAccount"),
    ({"Principal": {"Service": "events.amazonaws.com"}, "Condition": {"ArnEquals": {"aws:SourceArn": "arn:r"}}}, None),
    ({"Principal": {"AWS": "arn:aws:iam::123456789012:root"}}, None),
])
def test_the_resource_policy_rules_check_who_is_allowed(statement: dict[str, Any], finding: str | None) -> None:
    document = {"Statement": [{"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": "arn:aws:sqs:x:1:q",
                               **statement}]}
    found = findings(document, "resource")
    if finding is None:
        assert found == []
    else:
        (only,) = found
        assert finding in only, only


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
    assert replicate["sqs:SendMessage"] == {arns.stream_dlq}

    fanout = granted(committed_policy(chalice_config, "prod", "fanout_users"))
    assert fanout["events:PutEvents"] == {arns.event_bus}
    assert fanout["sqs:SendMessage"] == {arns.stream_dlq}
    assert not any(a.startswith("dynamodb:") and a not in {*policies.STREAM_READ, "dynamodb:ListStreams"}
                   for a in fanout)

    ingest = granted(committed_policy(chalice_config, "prod", "ingest_device_metadata"))
    assert ingest["sqs:DeleteMessage"] == ingest["sqs:ReceiveMessage"] == {arns.ingest_queue}
    assert ingest["sqs:SendMessage"] == {arns.ingest_dlq}
    assert ingest["dynamodb:BatchWriteItem"] == {arns.device_metadata_table}

    orders = granted(committed_policy(chalice_config, "prod", "process_orders"))
    assert orders["dynamodb:UpdateItem"] == {arns.orders_table}
    assert orders["dynamodb:GetRecords"] == {arns.orders_stream}
    assert orders["sqs:SendMessage"] == {arns.stream_dlq}


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
])
def test_stage_arns_name_the_variable_that_is_off(chalice_config: dict[str, Any], variable: str, value: str,
                                                  reason: str) -> None:
    env = dict(stage_env(chalice_config, "prod"))
    env[variable] = value
    with pytest.raises(ValueError, match=reason):
        policies.StageArns.from_environment("prod", env)
