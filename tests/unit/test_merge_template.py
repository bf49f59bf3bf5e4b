"""Event source mapping settings read from a merge template (tooling.merge_template): one reader for the
local stack (by handler name, typed) and `ops provision --event-sources` (by deployed function name)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tooling.merge_template import (
    MERGE_TEMPLATE_PATH,
    MappingSettings,
    Scope,
    function_mappings,
    load_mapping_settings,
    mapping_settings,
    template_variables,
)

SAM_FRAGMENT = """
Resources:
  ReplicateUsers:
    Properties:
      FunctionName:
        Fn::Sub: sp-${Stage}-replicate_users
      Events:
        ReplicateUsersDynamodbEventSource:
          Properties:
            BisectBatchOnFunctionError: true
            MaximumRetryAttempts: 4
            MaximumRecordAgeInSeconds: 3600
            DestinationConfig:
              OnFailure:
                Destination:
                  Fn::Sub: arn:${AWS::Partition}:sqs:${AWS::Region}:${AWS::AccountId}:sp-${Stage}-dlq
  IngestDeviceMetadata:
    Properties:
      FunctionName: sp-ingest
      Events:
        IngestDeviceMetadataSqsEventSource:
          Properties:
            FunctionResponseTypes: [ReportBatchItemFailures]
  ProcessOrders:
    Properties:
      FunctionName: sp-orders
      Events:
        ProcessOrdersDynamodbEventSource:
          Properties:
            MaximumRecordAgeInSeconds: -1
"""


@pytest.fixture
def merge_template(tmp_path: Path) -> Path:
    path = tmp_path / "merge-template.yaml"
    path.write_text(SAM_FRAGMENT)
    return path


def test_sam_event_properties_of_the_function_are_its_mapping_settings(merge_template: Path) -> None:
    # GIVEN a merge template  WHEN read for handler replicate_users of stage dev
    settings = load_mapping_settings("replicate_users", template_variables("dev"), merge_template)
    # THEN the retry cap, bisect, record age and the resolved destination are there; reporting stays off
    assert settings == MappingSettings(report_failures=False, max_retry_attempts=4, bisect_on_error=True,
                                       max_record_age=3600,
                                       on_failure_arn="arn:aws:sqs:us-east-1:123456789012:sp-dev-dlq")


def test_report_batch_item_failures_is_on_only_where_the_template_says_so(merge_template: Path) -> None:
    scope = template_variables("dev")
    assert load_mapping_settings("ingest_device_metadata", scope, merge_template).report_failures is True
    assert load_mapping_settings("replicate_users", scope, merge_template).report_failures is False


def test_a_record_age_of_minus_one_means_no_limit(merge_template: Path) -> None:
    assert load_mapping_settings("process_orders", template_variables("dev"), merge_template).max_record_age is None


def test_a_function_the_template_does_not_mention_gets_lambdas_defaults(merge_template: Path) -> None:
    assert load_mapping_settings("fanout_users", template_variables("dev"), merge_template) == MappingSettings()


def test_no_merge_template_means_lambdas_defaults(tmp_path: Path) -> None:
    assert load_mapping_settings("replicate_users", template_variables("dev"),
                                 tmp_path / "missing.yaml") == MappingSettings()


def test_the_same_settings_by_deployed_function_name_for_the_tuner() -> None:
    by_name = mapping_settings(SAM_FRAGMENT, Scope("prod", region="eu-west-1", account="111122223333"))
    assert by_name["sp-prod-replicate_users"]["DestinationConfig"] == {
        "OnFailure": {"Destination": "arn:aws:sqs:eu-west-1:111122223333:sp-prod-dlq"}}
    assert by_name["sp-ingest"] == {"FunctionResponseTypes": ["ReportBatchItemFailures"]}
    assert set(function_mappings(SAM_FRAGMENT, Scope("prod"))) == {"ReplicateUsers", "IngestDeviceMetadata",
                                                                   "ProcessOrders"}


def test_a_json_template_reads_the_same(tmp_path: Path) -> None:
    path = tmp_path / "merge.json"
    path.write_text('{"Resources": {"FanoutUsers": {"Properties": {"FunctionName": "f", "Events": {"E": '
                    '{"Properties": {"FunctionResponseTypes": ["ReportBatchItemFailures"]}}}}}}}')
    assert load_mapping_settings("fanout_users", template_variables("dev"), path).report_failures is True


def test_a_short_tag_is_refused_not_misread() -> None:
    # The template is plain YAML on purpose: any tool can read it. A `!Sub` slipped in is a clear error.
    with pytest.raises(yaml.YAMLError, match="!Sub"):
        function_mappings(SAM_FRAGMENT.replace("Fn::Sub: sp-${Stage}-replicate_users",
                                               "!Sub sp-${Stage}-replicate_users"), Scope("dev"))


def test_the_projects_merge_template_gives_every_stream_consumer_its_failure_settings() -> None:
    for handler in ("replicate_users", "fanout_users", "process_orders"):
        settings = load_mapping_settings(handler, template_variables("dev"), MERGE_TEMPLATE_PATH)
        assert settings.bisect_on_error and settings.max_retry_attempts == 10, handler
        assert settings.on_failure_arn == "arn:aws:sqs:us-east-1:123456789012:stream-pipeline-dev-stream-dlq"
    assert load_mapping_settings("ingest_device_metadata", template_variables("dev")).report_failures is True
