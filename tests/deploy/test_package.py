"""`chalice package --merge-template infra/merge-template.yaml`: what CloudFormation would deploy, checked
offline with cfn-lint and the real SAM transform."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml
from cfnlint.api import lint
from cfnlint.decode.cfn_yaml import loads as parse_template  # CloudFormation YAML, short tags included

from ops import policies
from tests.deploy.conftest import CHALICE_DIR, INFRA_TEMPLATE, MERGE_TEMPLATE, AppShape, Package


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


def test_merge_template_is_plain_yaml_naming_only_resources_chalice_generates(prod_package: Package,
                                                                              app_shape: AppShape) -> None:
    merge = yaml.safe_load(MERGE_TEMPLATE.read_text())
    generated = {logical_id(function): "AWS::Serverless::Function" for function in app_shape.functions}
    generated["RestAPI"] = "AWS::Serverless::Api"
    # A key Chalice did not generate would become a resource without a Type: a broken template.
    assert set(merge["Resources"]) <= set(generated)
    for name in merge["Resources"]:
        assert prod_package.sam["Resources"][name]["Type"] == generated[name]


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


# --- API authorization and throttling per stage -------------------------------------------------

HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "x-amazon-apigateway-any-method"}
# API Gateway's swagger extension for IAM authorization: every method naming it is imported as AWS_IAM.
SIGV4 = {"sigv4": {"in": "header", "type": "apiKey", "name": "Authorization",
                   "x-amazon-apigateway-authtype": "awsSigv4"}}


def rest_api_body(package: Package, template: str) -> dict[str, Any]:
    """The swagger document of the stage's one REST API: SAM's DefinitionBody, or CloudFormation's Body."""
    if template == "sam":
        (api,) = package.resources("AWS::Serverless::Api", "sam").values()
        return dict(api["Properties"]["DefinitionBody"])
    (api,) = package.resources("AWS::ApiGateway::RestApi").values()
    return dict(api["Properties"]["Body"])


def swagger_operations(body: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """Every method of every path, CORS preflights included (a method nobody declared would show here)."""
    return {(path, method.upper()): operation for path, methods in body["paths"].items()
            for method, operation in methods.items() if method in HTTP_METHODS}


@pytest.mark.parametrize("template", ["sam", "cloudformation"])
def test_every_prod_route_reads_included_requires_sigv4(prod_package: Package, app_shape: AppShape,
                                                        template: str) -> None:
    body = rest_api_body(prod_package, template)
    operations = swagger_operations(body)
    assert set(operations) == set(app_shape.routes)
    assert {method for _, method in operations} >= {"GET", "POST", "PATCH", "DELETE"}
    assert body["securityDefinitions"] == SIGV4
    unprotected = sorted(route for route, op in operations.items() if op.get("security") != [{"sigv4": []}])
    assert unprotected == []


@pytest.mark.parametrize("template", ["sam", "cloudformation"])
def test_dev_routes_are_open(dev_package: Package, app_shape: AppShape, template: str) -> None:
    body = rest_api_body(dev_package, template)
    operations = swagger_operations(body)
    assert set(operations) == set(app_shape.routes)
    assert all("security" not in operation for operation in operations.values())
    assert "securityDefinitions" not in body


def load_app(monkeypatch: pytest.MonkeyPatch, **env: str) -> Any:
    """A fresh import of app.py under the given API_AUTH (the session's `app` module stays as it is)."""
    import importlib.util

    from tests.deploy.conftest import ROOT

    monkeypatch.delenv("API_AUTH", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    spec = importlib.util.spec_from_file_location("app_under_test", ROOT / "app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.app


def route_authorizers(app: Any) -> dict[tuple[str, str], str | None]:
    return {(path, method): type(entry.authorizer).__name__ if entry.authorizer else None
            for path, methods in app.routes.items() for method, entry in methods.items()}


def test_a_stage_without_api_auth_protects_every_route(monkeypatch: pytest.MonkeyPatch, app_shape: AppShape) -> None:
    authorizers = route_authorizers(load_app(monkeypatch))
    assert set(authorizers) == set(app_shape.routes)
    assert set(authorizers.values()) == {"IAMAuthorizer"}
    assert set(route_authorizers(load_app(monkeypatch, API_AUTH="none")).values()) == {None}


def test_a_misspelt_api_auth_stops_the_import(monkeypatch: pytest.MonkeyPatch) -> None:
    from chalicelib.config import ConfigurationError

    with pytest.raises(ConfigurationError, match="API_AUTH must be 'iam'"):
        load_app(monkeypatch, API_AUTH="IAM")


def find_in_map(template: dict[str, Any], value: Any, stage: str) -> Any:
    """Resolve `Fn::FindInMap` over `Ref: Stage` as CloudFormation does for `--parameter-overrides Stage=...`."""
    if isinstance(value, dict) and set(value) == {"Fn::FindInMap"}:
        mapping, key, attribute = value["Fn::FindInMap"]
        assert key == {"Ref": "Stage"}, value
        return template["Mappings"][mapping][stage][attribute]
    return value


def stage_limits(package: Package) -> tuple[str, list[dict[str, Any]]]:
    """(stage name, method settings resolved for the package's stage) of the API's one CloudFormation stage."""
    (stage,) = package.resources("AWS::ApiGateway::Stage").values()
    settings = [{k: find_in_map(package.cloudformation, v, package.stage) for k, v in s.items()}
                for s in stage["Properties"].get("MethodSettings", [])]
    return stage["Properties"]["StageName"], settings


@pytest.mark.parametrize("stage", ["prod", "dev"])
def test_the_api_stage_throttles_every_method_with_the_merge_templates_limits(
        stage: str, request: pytest.FixtureRequest, chalice_config: dict[str, Any]) -> None:
    from tooling.merge_template import stage_throttling

    package: Package = request.getfixturevalue(f"{stage}_package")
    name, settings = stage_limits(package)
    limits = stage_throttling(MERGE_TEMPLATE.read_text(), stage)
    assert name == chalice_config["stages"][stage]["api_gateway_stage"]
    # One entry for every resource and method: nothing reaches Lambda beyond these limits.
    assert settings == [{"ResourcePath": "/*", "HttpMethod": "*", "ThrottlingRateLimit": limits.rate_limit,
                         "ThrottlingBurstLimit": limits.burst_limit}]
    assert limits.rate_limit > 0 and limits.burst_limit >= limits.rate_limit
