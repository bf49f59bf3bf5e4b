"""The merge template's failure settings, read for the plain `chalice deploy` path (`provision --event-sources`):
the same settings as the package path, applied to real (moto) event source mappings."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from chalicelib.backoff import Backoff, no_sleep
from ops import policies
from ops.event_sources import MappingTuner
from tests.deploy.conftest import AppShape, Package
from tests.deploy.test_package import logical_id, mappings_by_function
from tests.support.faults import FaultyClient, client_error
from tooling.merge_template import MERGE_TEMPLATE_PATH, Scope, mapping_settings

PROD = Scope(stage="prod", partition="aws", region="us-east-1", account="123456789012")


def test_settings_per_function_name_for_a_stage(app_shape: AppShape) -> None:
    settings = mapping_settings(MERGE_TEMPLATE_PATH.read_text(), PROD)

    for function in app_shape.stream_functions:
        assert settings[f"stream-pipeline-prod-{function}"] == {
            "BisectBatchOnFunctionError": True, "MaximumRetryAttempts": 10, "MaximumRecordAgeInSeconds": 3600,
            "DestinationConfig": {"OnFailure": {
                "Destination": "arn:aws:sqs:us-east-1:123456789012:stream-pipeline-prod-stream-dlq"}}}
    for function in app_shape.queue_functions:
        assert settings[f"stream-pipeline-prod-{function}"] == {"FunctionResponseTypes": ["ReportBatchItemFailures"]}
    assert "stream-pipeline-prod" not in settings  # the API handler has no event source


def test_both_deploy_paths_get_the_same_settings(prod_package: Package, app_shape: AppShape) -> None:
    # GIVEN the packaged (CloudFormation) mappings and the settings `--event-sources` applies
    packaged = mappings_by_function(prod_package)
    applied = mapping_settings(MERGE_TEMPLATE_PATH.read_text(), PROD)
    arns = policies.StageArns.from_environment(
        "prod", prod_package.sam["Resources"]["APIHandler"]["Properties"]["Environment"]["Variables"])
    # THEN every setting of every mapping agrees, once CloudFormation's substitutions are made
    for function in (*app_shape.stream_functions, *app_shape.queue_functions):
        mapping = packaged[logical_id(function)]
        chosen = applied[arns.function_name(function)]
        assert {k: PROD.substitute(mapping[k]) for k in chosen} == chosen, function


@pytest.mark.parametrize("template, reason", [
    ("Resources:\n  F:\n    Properties:\n      Events:\n        E:\n          Properties:\n"
     "            MaximumRetryAttempts: 3\n", "F has event settings but no FunctionName"),
    ("Resources:\n  F:\n    Properties:\n      FunctionName:\n        Fn::Sub: [\"x-${A}\", {A: \"1\"}]\n"
     "      Events:\n"
     "        E:\n          Properties:\n            MaximumRetryAttempts: 3\n", "one-string form of Fn::Sub"),
    ("Resources:\n  F:\n    Properties:\n      FunctionName:\n        Fn::Sub: x-${Other}\n      Events:\n"
     "        E:\n          Properties:\n            MaximumRetryAttempts: 3\n", r"unresolved reference"),
])
def test_a_template_the_tuner_cannot_resolve_is_refused(template: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        mapping_settings(template, PROD)


def test_functions_without_event_settings_are_left_alone() -> None:
    template = "Resources:\n  F:\n    Properties:\n      FunctionName: f\n"
    assert mapping_settings(template, PROD) == {}


# --- the adapter against moto --------------------------------------------------------------

@pytest.fixture
def deployed_consumer() -> Iterator[Any]:
    """A function subscribed to a queue, as `chalice deploy` leaves it (no failure settings)."""
    with mock_aws():
        iam, sqs, lambda_client = boto3.client("iam"), boto3.client("sqs"), boto3.client("lambda")
        role = iam.create_role(RoleName="r", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        code = io.BytesIO()
        with zipfile.ZipFile(code, "w") as archive:
            archive.writestr("app.py", "def handler(event, context):\n    return {}\n")
        lambda_client.create_function(FunctionName="stream-pipeline-prod-ingest_device_metadata",
                                      Runtime="python3.13", Role=role, Handler="app.handler",
                                      Code={"ZipFile": code.getvalue()})
        queue = sqs.create_queue(QueueName="stream-pipeline-prod-ingest")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        lambda_client.create_event_source_mapping(EventSourceArn=arn, BatchSize=10,
                                                  FunctionName="stream-pipeline-prod-ingest_device_metadata")
        yield lambda_client


def test_tuner_sets_the_settings_on_the_deployed_mapping(deployed_consumer: Any) -> None:
    tuner = MappingTuner(deployed_consumer, Backoff(sleep=no_sleep))
    settings = {"stream-pipeline-prod-ingest_device_metadata": {"FunctionResponseTypes": ["ReportBatchItemFailures"]}}

    updated = tuner.apply(settings)

    (mapping,) = deployed_consumer.list_event_source_mappings(
        FunctionName="stream-pipeline-prod-ingest_device_metadata")["EventSourceMappings"]
    assert updated == {"stream-pipeline-prod-ingest_device_metadata": [mapping["UUID"]]}
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["BatchSize"] == 10  # what chalice set stays
    assert tuner.calls == 2  # one list (one page), one update


def test_tuner_waits_for_a_mapping_still_being_created(deployed_consumer: Any) -> None:
    left = {"busy": 2}

    def busy_then_real(real: Any, **kwargs: Any) -> Any:
        if left["busy"]:
            left["busy"] -= 1
            raise client_error("ResourceInUseException", "still Creating", "UpdateEventSourceMapping")
        return real(**kwargs)

    slept: list[float] = []
    tuner = MappingTuner(FaultyClient(deployed_consumer, update_event_source_mapping=busy_then_real),
                         Backoff(sleep=slept.append))

    tuner.apply({"stream-pipeline-prod-ingest_device_metadata": {"FunctionResponseTypes": ["ReportBatchItemFailures"]}})

    (mapping,) = deployed_consumer.list_event_source_mappings()["EventSourceMappings"]
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert len(slept) == 2 and tuner.calls == 4


def test_tuner_refuses_a_function_that_was_never_deployed(deployed_consumer: Any) -> None:
    tuner = MappingTuner(deployed_consumer, Backoff(sleep=no_sleep))

    with pytest.raises(LookupError, match="stream-pipeline-prod-process_orders has no event source mapping"):
        tuner.apply({"stream-pipeline-prod-process_orders": {"MaximumRetryAttempts": 10}})

    (mapping,) = deployed_consumer.list_event_source_mappings()["EventSourceMappings"]
    assert not mapping.get("FunctionResponseTypes")


def test_tuner_gives_up_on_other_errors_at_once(deployed_consumer: Any) -> None:
    def invalid(real: Any, **kwargs: Any) -> Any:
        raise client_error("InvalidParameterValueException", "no", "UpdateEventSourceMapping")

    slept: list[float] = []
    tuner = MappingTuner(FaultyClient(deployed_consumer, update_event_source_mapping=invalid),
                         Backoff(sleep=slept.append))

    with pytest.raises(Exception, match="InvalidParameterValueException"):
        tuner.apply({"stream-pipeline-prod-ingest_device_metadata": {"MaximumRetryAttempts": 10}})
    assert slept == []
