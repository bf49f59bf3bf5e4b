"""API stage throttling: the limits are written once (infra/merge-template.yaml, per stage); the package path
carries them in CloudFormation, `provision --api-throttling` puts the same ones on the stage `chalice deploy`
made (an API Gateway stage in moto here)."""

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

from ops import provision
from ops.api_throttling import StageThrottler, deployed_rest_api
from tests.deploy.conftest import CHALICE_DIR, Package
from tests.deploy.test_package import stage_limits
from tooling.merge_template import MERGE_TEMPLATE_PATH, Throttling, stage_throttling

TEMPLATE = MERGE_TEMPLATE_PATH.read_text()


def template_with(limits: str) -> str:
    return f"Mappings:\n  ApiThrottling:\n    prod:\n{limits}\n"


# --- the one source --------------------------------------------------------------------------

def test_every_configured_stage_has_limits(chalice_config: dict[str, Any]) -> None:
    # A stage missing here would fail its deploy on both paths (Fn::FindInMap, and provision): add it first.
    for stage in chalice_config["stages"]:
        limits = stage_throttling(TEMPLATE, stage)
        assert limits.rate_limit > 0 and limits.burst_limit >= limits.rate_limit, stage


def test_prod_limits_as_written() -> None:
    assert stage_throttling(TEMPLATE, "prod") == Throttling(rate_limit=100.0, burst_limit=200)


@pytest.mark.parametrize("template, reason", [
    ("Resources: {}\n", "no Mappings.ApiThrottling"),
    ("Mappings:\n  ApiThrottling:\n    dev: {RateLimit: 1, BurstLimit: 2}\n",
     "stage prod has no API throttling .* Mappings.ApiThrottling.prod .*\\(dev have them\\)"),
    (template_with("      RateLimit: 0\n      BurstLimit: 10"), "RateLimit must be a number .* got 0"),
    (template_with("      RateLimit: '100'\n      BurstLimit: 10"), "RateLimit must be a number .* got '100'"),
    (template_with("      RateLimit: true\n      BurstLimit: 10"), "RateLimit must be a number .* got True"),
    (template_with("      RateLimit: 10"), "BurstLimit must be a whole number .* got None"),
    (template_with("      RateLimit: 10\n      BurstLimit: 2.5"), "BurstLimit must be a whole number .* got 2.5"),
])
def test_limits_that_cannot_be_applied_are_refused_naming_what_is_off(template: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        stage_throttling(template, "prod")


def test_patch_operations_cover_every_method_of_the_stage() -> None:
    assert Throttling(12.5, 25).patch_operations() == [
        {"op": "replace", "path": "/*/*/throttling/rateLimit", "value": "12.5"},
        {"op": "replace", "path": "/*/*/throttling/burstLimit", "value": "25"},
    ]
    assert Throttling(100.0, 200).patch_operations()[0]["value"] == "100"


# --- the chalice deploy path, in moto ----------------------------------------------------------

@pytest.fixture
def deployed_api() -> Iterator[tuple[Any, str]]:
    """A REST API with stage `api`, as `chalice deploy` leaves it (no method settings): (client, its id)."""
    with mock_aws():
        apigateway = boto3.client("apigateway")
        api_id = apigateway.create_rest_api(name="stream-pipeline")["id"]
        root = apigateway.get_resources(restApiId=api_id)["items"][0]["id"]
        users = apigateway.create_resource(restApiId=api_id, parentId=root, pathPart="users")["id"]
        apigateway.put_method(restApiId=api_id, resourceId=users, httpMethod="GET", authorizationType="AWS_IAM")
        apigateway.put_integration(restApiId=api_id, resourceId=users, httpMethod="GET", type="MOCK")
        apigateway.create_deployment(restApiId=api_id, stageName="api")
        yield apigateway, api_id


def test_the_throttler_sets_the_limits_on_every_method_of_the_deployed_stage(deployed_api: tuple[Any, str]) -> None:
    apigateway, api_id = deployed_api
    throttler = StageThrottler(apigateway)

    applied = throttler.apply(api_id, "api", Throttling(100.0, 200))

    settings = apigateway.get_stage(restApiId=api_id, stageName="api")["methodSettings"]
    assert set(settings) == {"*/*"}
    assert (settings["*/*"]["throttlingRateLimit"], settings["*/*"]["throttlingBurstLimit"]) == (100.0, 200)
    assert applied == settings["*/*"]
    assert throttler.calls == 1


def test_the_throttler_refuses_an_answer_without_the_limits(deployed_api: tuple[Any, str]) -> None:
    apigateway, api_id = deployed_api

    class Ignoring:  # an API that accepts the update and keeps its old settings
        def update_stage(self, **kwargs: Any) -> dict[str, Any]:
            return apigateway.get_stage(restApiId=kwargs["restApiId"], stageName=kwargs["stageName"])

    with pytest.raises(RuntimeError, match="answered no limits, not rate 100/s and burst 200"):
        StageThrottler(Ignoring()).apply(api_id, "api", Throttling(100.0, 200))


def test_both_deploy_paths_carry_the_same_limits(prod_package: Package, deployed_api: tuple[Any, str]) -> None:
    # GIVEN the limits CloudFormation puts on the packaged stage (package path)
    _, (packaged,) = stage_limits(prod_package)
    # WHEN provision's throttler applies the merge template's prod limits to a deployed stage (deploy path)
    apigateway, api_id = deployed_api
    StageThrottler(apigateway).apply(api_id, "api", stage_throttling(TEMPLATE, "prod"))
    # THEN the stage API Gateway keeps has exactly the packaged limits on every method
    deployed = apigateway.get_stage(restApiId=api_id, stageName="api")["methodSettings"]
    assert (packaged["ResourcePath"], packaged["HttpMethod"]) == ("/*", "*")
    assert (deployed["*/*"]["throttlingRateLimit"], deployed["*/*"]["throttlingBurstLimit"]) == (
        packaged["ThrottlingRateLimit"], packaged["ThrottlingBurstLimit"])


# --- `python -m ops provision --api-throttling` ------------------------------------------------

@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of .chalice/ (config and policies) in a project directory of its own; returns config.json."""
    shutil.copytree(CHALICE_DIR, tmp_path / ".chalice", ignore=shutil.ignore_patterns("deployed"))
    return tmp_path / ".chalice" / "config.json"


def record_deploy(config_path: Path, stage: str, rest_api_id: str) -> None:
    """What `chalice deploy --stage STAGE` records about the REST API it made."""
    deployed = config_path.parent / "deployed"
    deployed.mkdir(exist_ok=True)
    (deployed / f"{stage}.json").write_text(json.dumps({"schema_version": "2.0", "backend": "api", "resources": [
        {"name": "rest_api", "resource_type": "rest_api", "rest_api_id": rest_api_id,
         "rest_api_url": f"https://{rest_api_id}.execute-api.us-east-1.amazonaws.com/api/"}]}))


def run_provision(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--stage", required=True)
    provision.add_arguments(parser)
    return provision.run(parser.parse_args(list(argv)))


def test_deployed_rest_api_is_read_from_chalices_deployed_state(project: Path) -> None:
    record_deploy(project, "prod", "a1b2c3")
    assert deployed_rest_api(project, "prod") == ("a1b2c3", "api")
    with pytest.raises(LookupError, match=r"run `chalice deploy --stage dev` first"):
        deployed_rest_api(project, "dev")


def test_provision_api_throttling_sets_the_stages_limits(project: Path, deployed_api: tuple[Any, str],
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    apigateway, api_id = deployed_api
    record_deploy(project, "prod", api_id)
    before = project.read_text()

    assert run_provision("--stage", "prod", "--config", str(project), "--api-throttling") == 0

    settings = apigateway.get_stage(restApiId=api_id, stageName="api")["methodSettings"]["*/*"]
    assert (settings["throttlingRateLimit"], settings["throttlingBurstLimit"]) == (100.0, 200)
    assert "every method throttled at 100 requests/s, burst 200" in capsys.readouterr().out
    assert project.read_text() == before  # no stack change, nothing recorded
    assert boto3.client("cloudformation").describe_stacks()["Stacks"] == []


def test_provision_api_throttling_before_chalice_deploy_fails_clearly(project: Path, deployed_api: tuple[Any, str],
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert run_provision("--stage", "prod", "--config", str(project), "--api-throttling") == 1
    assert "run `chalice deploy --stage prod` first" in capsys.readouterr().out


def test_api_throttling_does_not_combine_with_policies_only(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_provision("--stage", "prod", "--config", str(project), "--api-throttling", "--policies-only") == 2
    assert "does not combine with --policies-only" in capsys.readouterr().out
