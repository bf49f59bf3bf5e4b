"""`chalice package --merge-template infra/merge-template.yaml`: what CloudFormation would deploy, checked
offline with cfn-lint and the real SAM transform."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml
from cfnlint.api import lint

from local_stack.deployment import parse_template
from ops import policies
from tests.deploy.conftest import CHALICE_DIR, INFRA_TEMPLATE, MERGE_TEMPLATE, WRITE_METHODS, AppShape, Package


def logical_id(function: str) -> str:
    """The resource name Chalice gives a function in its template."""
    from chalice.utils import to_cfn_resource_name

    return "APIHandler" if function == "api_handler" else to_cfn_resource_name(function)


def lint_errors(template: str | dict[str, Any]) -> list[str]:
    text = template if isinstance(template, str) else json.dumps(template)
    return [f"{m.rule.id} {m.message} ({m.linenumber}:{m.columnnumber})" for m in lint(text)]


def sub_with_stage(value: Any, stage: str) -> Any:
    """Resolve the merge template's Fn::Sub on ${Stage} (the only parameter it adds)."""
    if isinstance(value, dict) and set(value) == {"Fn::Sub"} and isinstance(value["Fn::Sub"], str):
        return value["Fn::Sub"].replace("${Stage}", stage)
    return value


def mappings_by_function(package: Package) -> dict[str, dict[str, Any]]:
    """Event source mapping properties of the transformed template, by function logical id."""
    found: dict[str, dict[str, Any]] = {}
    for name, mapping in package.resources("AWS::Lambda::EventSourceMapping").items():
        function = mapping["Properties"]["FunctionName"]["Ref"]
        assert function not in found, f"{function} has two event source mappings ({name})"
        found[function] = mapping["Properties"]
    return found


# --- the artefacts pass cfn-lint ----------------------------------------------------------------

def test_infrastructure_template_passes_cfn_lint() -> None:
    assert lint_errors(INFRA_TEMPLATE.read_text()) == []


@pytest.mark.parametrize("stage", ["prod", "dev"])
def test_packaged_template_with_merge_template_passes_cfn_lint(stage: str, request: pytest.FixtureRequest) -> None:
    package: Package = request.getfixturevalue(f"{stage}_package")
    assert lint_errors(package.sam_text) == []


@pytest.mark.parametrize("stage", ["prod", "dev"])
def test_cloudformation_after_the_sam_transform_passes_cfn_lint(stage: str, request: pytest.FixtureRequest) -> None:
    # cfn-lint checks SAM event properties only loosely; after the transform they are EventSourceMappings
    # and every setting is checked against CloudFormation's own schema (ranges, names, shapes).
    package: Package = request.getfixturevalue(f"{stage}_package")
    assert lint_errors(package.cloudformation) == []


def test_merge_template_is_plain_yaml_naming_only_functions_chalice_generates(prod_package: Package,
                                                                              app_shape: AppShape) -> None:
    merge = yaml.safe_load(MERGE_TEMPLATE.read_text())
    generated = {logical_id(function) for function in app_shape.functions}
    # A key Chalice did not generate would become a resource without a Type: a broken template.
    assert set(merge["Resources"]) <= generated
    for name in merge["Resources"]:
        assert prod_package.sam["Resources"][name]["Type"] == "AWS::Serverless::Function"


# --- failure settings the decorators cannot express -------------------------------------------

def test_every_stream_mapping_bisects_retries_boundedly_and_reports_to_the_stream_dlq(
        prod_package: Package, app_shape: AppShape) -> None:
    mappings = mappings_by_function(prod_package)
    env = prod_package.sam["Resources"]["APIHandler"]["Properties"]["Environment"]["Variables"]
    stream_dlq = policies.StageArns.from_environment("prod", env).stream_dlq
    assert app_shape.stream_functions, "app.py declares no stream consumer"
    for function, variable in app_shape.stream_functions.items():
        mapping = mappings[logical_id(function)]
        assert mapping["EventSourceArn"] == env[variable], function
        assert mapping["BisectBatchOnFunctionError"] is True, function
        assert 0 <= mapping["MaximumRetryAttempts"] <= 10, function
        assert 60 <= mapping["MaximumRecordAgeInSeconds"] <= 86400, function  # within the stream's 24 h
        destination = mapping["DestinationConfig"]["OnFailure"]["Destination"]
        assert sub_with_stage(destination, "prod").replace(
            "${AWS::Partition}", "aws").replace("${AWS::Region}", "us-east-1").replace(
            "${AWS::AccountId}", "123456789012") == stream_dlq, function
        # Stream consumers dead-letter failures themselves and return an empty list: reporting adds nothing.
        assert "ReportBatchItemFailures" not in mapping.get("FunctionResponseTypes", []), function


def test_queue_mapping_reports_batch_item_failures(prod_package: Package, app_shape: AppShape) -> None:
    mappings = mappings_by_function(prod_package)
    assert app_shape.queue_functions, "app.py declares no queue consumer"
    for function in app_shape.queue_functions:
        mapping = mappings[logical_id(function)]
        assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"], function
        assert mapping["EventSourceArn"]["Fn::Sub"].endswith(":stream-pipeline-prod-ingest"), function


def test_ingest_visibility_timeout_is_at_least_six_times_the_ingest_function_timeout(
        prod_package: Package, app_shape: AppShape) -> None:
    infra = parse_template(INFRA_TEMPLATE.read_text())
    visibility = int(infra["Parameters"]["IngestVisibilityTimeout"]["Default"])
    for function in app_shape.queue_functions:
        timeout = prod_package.sam["Resources"][logical_id(function)]["Properties"]["Timeout"]
        assert timeout == 60, function
        assert visibility >= 6 * timeout, (function, visibility, timeout)


def test_functions_get_the_names_chalice_deploy_gives_them(prod_package: Package, app_shape: AppShape) -> None:
    arns = policies.StageArns.from_environment(
        "prod", prod_package.sam["Resources"]["APIHandler"]["Properties"]["Environment"]["Variables"])
    for function in app_shape.functions:
        name = prod_package.sam["Resources"][logical_id(function)]["Properties"]["FunctionName"]
        assert sub_with_stage(name, "prod") == arns.function_name(function)


# --- least privilege as packaged --------------------------------------------------------------

@pytest.mark.parametrize("stage", ["prod", "dev"])
def test_each_function_has_its_own_role_carrying_exactly_its_policy_file(
        stage: str, request: pytest.FixtureRequest, app_shape: AppShape) -> None:
    package: Package = request.getfixturevalue(f"{stage}_package")
    roles = package.resources("AWS::IAM::Role", "sam")
    used: set[str] = set()
    for function in app_shape.functions:
        role = package.sam["Resources"][logical_id(function)]["Properties"]["Role"]["Fn::GetAtt"][0]
        assert role not in used, f"{function} shares role {role}"
        used.add(role)
        (policy,) = roles[role]["Properties"]["Policies"]
        expected = json.loads((CHALICE_DIR / policies.policy_path(stage, function)).read_text())
        assert policy["PolicyDocument"] == expected, function
    assert set(roles) == used, "a role no function uses (autogen's DefaultRole?)"


# --- API authorization per stage --------------------------------------------------------------

def swagger_operations(package: Package) -> dict[tuple[str, str], dict[str, Any]]:
    (api,) = package.resources("AWS::Serverless::Api", "sam").values()
    paths = api["Properties"]["DefinitionBody"]["paths"]
    return {(path, method.upper()): operation for path, methods in paths.items()
            for method, operation in methods.items() if method != "options"}


def test_prod_write_routes_require_iam_and_read_routes_do_not(prod_package: Package, app_shape: AppShape) -> None:
    operations = swagger_operations(prod_package)
    assert set(operations) == set(app_shape.routes)
    (api,) = prod_package.resources("AWS::Serverless::Api", "sam").values()
    definitions = api["Properties"]["DefinitionBody"]["securityDefinitions"]
    assert definitions == {"sigv4": {"in": "header", "type": "apiKey", "name": "Authorization",
                                     "x-amazon-apigateway-authtype": "awsSigv4"}}
    writes = {route for route in operations if route[1] in WRITE_METHODS}
    assert writes >= {("/users", "POST"), ("/orders", "POST")}
    for route, operation in operations.items():
        if route in writes:
            assert operation.get("security") == [{"sigv4": []}], route
        else:
            assert "security" not in operation, route


def test_dev_routes_are_open(dev_package: Package, app_shape: AppShape) -> None:
    operations = swagger_operations(dev_package)
    assert set(operations) == set(app_shape.routes)
    assert all("security" not in operation for operation in operations.values())
    (api,) = dev_package.resources("AWS::Serverless::Api", "sam").values()
    assert "securityDefinitions" not in api["Properties"]["DefinitionBody"]
