"""infra/template.yaml's alarms and dashboard, read from the template itself (SPEC "Observability")."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from cfnlint.decode.cfn_yaml import loads as parse_template  # CloudFormation YAML, short tags included

from chalicelib.observability.metrics import COUNT_METRICS, STREAM_LAG_MS
from tests.deploy.conftest import INFRA_TEMPLATE, AppShape, Package
from tests.deploy.test_package import logical_id, sub_with_stage

CONSUMERS = {"replication", "fanout", "orders", "ingest"}
STREAM_CONSUMERS = {"replication", "fanout", "orders"}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return parse_template(INFRA_TEMPLATE.read_text())


def alarms(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: resource["Properties"] for name, resource in template["Resources"].items()
            if resource["Type"] == "AWS::CloudWatch::Alarm"}


def dimension(alarm: dict[str, Any], name: str) -> Any:
    (value,) = [d["Value"] for d in alarm["Dimensions"] if d["Name"] == name]
    return value


def alarms_on(template: dict[str, Any], metric: str, dimension_name: str) -> dict[str, dict[str, Any]]:
    """Alarms of `metric`, by the value of their `dimension_name` dimension (a Ref/GetAtt/Sub as written)."""
    found = {}
    for alarm in alarms(template).values():
        if alarm["MetricName"] == metric:
            found[json.dumps(dimension(alarm, dimension_name), sort_keys=True)] = alarm
    return found


def dead_letter_queues(template: dict[str, Any]) -> set[str]:
    """Logical ids of every queue something dead-letters into: a redrive target, or named as a DLQ."""
    resources = template["Resources"]
    targets = {_logical_id(props["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"])
               for r in resources.values() if r["Type"] == "AWS::SQS::Queue"
               for props in [r.get("Properties", {})] if "RedrivePolicy" in props}
    named = {name for name, r in resources.items()
             if r["Type"] == "AWS::SQS::Queue" and str(r["Properties"]["QueueName"]["Fn::Sub"]).endswith("-dlq")}
    return targets | named


def _logical_id(get_att: str | list[str]) -> str:
    return get_att[0] if isinstance(get_att, list) else get_att.split(".")[0]


def test_every_dead_letter_queue_alarms_on_depth_and_on_age(template: dict[str, Any]) -> None:
    queues = dead_letter_queues(template)
    assert queues == {"IngestDeadLetterQueue", "StreamDeadLetterQueue"}
    for queue in queues:
        key = json.dumps({"Fn::GetAtt": [queue, "QueueName"]}, sort_keys=True)  # CloudFormation's own form
        visible = alarms_on(template, "ApproximateNumberOfMessagesVisible", "QueueName")[key]
        assert (visible["Threshold"], visible["ComparisonOperator"]) == (0, "GreaterThanThreshold")
        age = alarms_on(template, "ApproximateAgeOfOldestMessage", "QueueName")[key]
        assert age["Threshold"] == {"Ref": "DeadLetterAgeThresholdSeconds"}
        assert age["ComparisonOperator"] == "GreaterThanThreshold"
        assert visible["Namespace"] == age["Namespace"] == "AWS/SQS"


def test_every_function_alarms_on_errors_by_the_name_chalice_deploys_it_under(
        template: dict[str, Any], prod_package: Package, app_shape: AppShape) -> None:
    errors = {sub_with_stage(name, "prod") for name in
              (json.loads(key) for key in alarms_on(template, "Errors", "FunctionName"))}
    deployed = {sub_with_stage(prod_package.sam["Resources"][logical_id(function)]["Properties"]["FunctionName"],
                               "prod") for function in app_shape.functions}
    assert len(deployed) == 5 and "stream-pipeline-prod" in deployed
    assert errors == deployed


def test_every_stream_function_alarms_on_iterator_age(template: dict[str, Any], app_shape: AppShape) -> None:
    iterator = {sub_with_stage(json.loads(key), "prod"): alarm
                for key, alarm in alarms_on(template, "IteratorAge", "FunctionName").items()}
    assert set(iterator) == {f"stream-pipeline-prod-{function}" for function in app_shape.stream_functions}
    for alarm in iterator.values():
        assert alarm["Namespace"] == "AWS/Lambda" and alarm["Threshold"] == {"Ref": "IteratorAgeThresholdMs"}


def test_every_alarm_notifies_the_topic_and_no_data_is_no_alarm(template: dict[str, Any]) -> None:
    found = alarms(template)
    assert len(found) == 4 + 3 + 5
    for name, alarm in found.items():
        assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}], name
        assert alarm["OKActions"] == [{"Ref": "AlarmTopic"}], name
        assert alarm["TreatMissingData"] == "notBreaching", name
        assert alarm["AlarmName"]["Fn::Sub"].startswith("stream-pipeline-${Stage}-"), name
    assert len({alarm["AlarmName"]["Fn::Sub"] for alarm in found.values()}) == len(found)


def test_the_topic_is_an_output_and_its_e_mail_subscription_is_optional(template: dict[str, Any]) -> None:
    assert template["Resources"]["AlarmTopic"]["Type"] == "AWS::SNS::Topic"
    assert template["Outputs"]["AlarmTopicArn"]["Value"] == {"Ref": "AlarmTopic"}
    subscription = template["Resources"]["AlarmEmailSubscription"]
    assert subscription["Condition"] == "HasAlarmEmail"
    assert subscription["Properties"]["Endpoint"] == {"Ref": "AlarmEmail"}
    assert template["Parameters"]["AlarmEmail"]["Default"] == ""
    assert template["Conditions"]["HasAlarmEmail"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmEmail"}, ""]}]}


def test_the_dashboard_shows_every_consumer_metric_per_consumer(template: dict[str, Any]) -> None:
    dashboard = template["Resources"]["ConsumersDashboard"]["Properties"]
    body_text = dashboard["DashboardBody"]["Fn::Sub"]
    assert set(re.findall(r"\$\{([^}]+)\}", body_text)) <= {"MetricsNamespace", "AWS::Region", "Stage"}
    body = json.loads(body_text.replace("${MetricsNamespace}", "ns").replace("${AWS::Region}", "us-east-1")
                      .replace("${Stage}", "prod"))
    shown: dict[str, set[str]] = {}
    for widget in body["widgets"]:
        metrics = widget["properties"]["metrics"]
        namespace, metric, _, first = metrics[0]
        if namespace == "ns":
            shown[metric] = {first, *(line[-1] for line in metrics[1:])}
    assert shown == {**dict.fromkeys(COUNT_METRICS, CONSUMERS), STREAM_LAG_MS: STREAM_CONSUMERS}
    assert template["Parameters"]["MetricsNamespace"]["Default"] == "stream-pipeline"
