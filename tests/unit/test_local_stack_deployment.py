"""Event source mapping settings read from a merge template (local_stack.deployment)."""

from __future__ import annotations

from pathlib import Path

from local_stack.deployment import (
    MappingSettings,
    load_mapping_settings,
    mapping_settings,
    parse_template,
    template_variables,
)

SAM_FRAGMENT = """
Resources:
  ReplicateUsers:
    Properties:
      Events:
        ReplicateUsersDynamodbEventSource:
          Properties:
            BisectBatchOnFunctionError: true
            MaximumRetryAttempts: 4
            MaximumRecordAgeInSeconds: 3600
            DestinationConfig:
              OnFailure:
                Destination: !Sub arn:${AWS::Partition}:sqs:${AWS::Region}:${AWS::AccountId}:sp-${Stage}-dlq
  IngestDeviceMetadata:
    Properties:
      Events:
        IngestDeviceMetadataSqsEventSource:
          Properties:
            FunctionResponseTypes: [ReportBatchItemFailures]
  OrdersMapping:
    Type: AWS::Lambda::EventSourceMapping
    Properties:
      FunctionName: !Ref ProcessOrders
      FunctionResponseTypes: [ReportBatchItemFailures]
      MaximumRecordAgeInSeconds: -1
"""


def test_sam_event_properties_of_the_function_are_its_mapping_settings():
    # GIVEN a merge template with CloudFormation short tags  WHEN read for replicate_users
    settings = mapping_settings(parse_template(SAM_FRAGMENT), "replicate_users", template_variables("dev"))
    # THEN the retry cap, bisect, record age and the resolved destination are there; reporting stays off
    assert settings == MappingSettings(report_failures=False, max_retry_attempts=4, bisect_on_error=True,
                                       max_record_age=3600,
                                       on_failure_arn="arn:aws:sqs:us-east-1:123456789012:sp-dev-dlq")


def test_report_batch_item_failures_is_on_only_where_the_template_says_so():
    template = parse_template(SAM_FRAGMENT)
    assert mapping_settings(template, "ingest_device_metadata").report_failures is True
    assert mapping_settings(template, "replicate_users").report_failures is False


def test_an_event_source_mapping_resource_names_its_function():
    settings = mapping_settings(parse_template(SAM_FRAGMENT), "process_orders")
    assert settings.report_failures is True
    assert settings.max_record_age is None  # -1 is "no limit"


def test_a_function_the_template_does_not_mention_gets_lambdas_defaults():
    assert mapping_settings(parse_template(SAM_FRAGMENT), "fanout_users") == MappingSettings()


def test_no_merge_template_means_lambdas_defaults(tmp_path: Path):
    assert load_mapping_settings("replicate_users", path=tmp_path / "missing.yaml") == MappingSettings()


def test_a_json_template_reads_the_same(tmp_path: Path):
    path = tmp_path / "merge.json"
    path.write_text('{"Resources": {"FanoutUsers": {"Properties": {"Events": {"E": {"Properties": '
                    '{"FunctionResponseTypes": ["ReportBatchItemFailures"]}}}}}}}')
    assert load_mapping_settings("fanout_users", path=path).report_failures is True


def test_the_projects_merge_template_parses():
    # The deploy engineer's file: whatever it turns on, it must be readable.
    settings = load_mapping_settings("replicate_users", template_variables("dev"))
    assert isinstance(settings, MappingSettings)
