"""Each event source mapping's failure settings, as the deployment sets them (infra/merge-template.yaml).

Lambda honours `batchItemFailures` only when the mapping lists `ReportBatchItemFailures` in
`FunctionResponseTypes`, bisects and caps retries only when told to, and sends a failure record only to a
configured on-failure destination; the local stack is neither more nor less forgiving than production.
The merge template is merged into Chalice's generated SAM template, whose resources are named by
`chalice.utils.to_cfn_resource_name`: function `replicate_users` → `ReplicateUsers`, its mapping
`replicate_users-dynamodb-event-source` → `ReplicateUsersDynamodbEventSource`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from chalice.utils import to_cfn_resource_name

MERGE_TEMPLATE_PATH = Path(__file__).resolve().parents[1] / "infra" / "merge-template.yaml"
REPORT_BATCH_ITEM_FAILURES = "ReportBatchItemFailures"


class _CfnLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short tags (!Ref, !GetAtt, !Sub ...) read as {"Fn::X": value}."""


def _cfn_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    return {name: value}


_CfnLoader.add_multi_constructor("!", _cfn_tag)


def parse_template(text: str) -> dict[str, Any]:
    """A CloudFormation/SAM template in YAML or JSON."""
    document = yaml.load(text, Loader=_CfnLoader)  # noqa: S506 - a SafeLoader subclass
    return document if isinstance(document, dict) else {}


@dataclass(frozen=True)
class MappingSettings:
    """An event source mapping's failure settings; the defaults are Lambda's when nothing is set."""

    report_failures: bool = False  # FunctionResponseTypes: [ReportBatchItemFailures]
    max_retry_attempts: int | None = None  # None: the local stack's own cap (see RetryPolicy)
    bisect_on_error: bool = False  # BisectBatchOnFunctionError
    max_record_age: int | None = None  # MaximumRecordAgeInSeconds; None or -1: no limit
    on_failure_arn: str | None = None  # DestinationConfig.OnFailure.Destination (an SQS queue here)


def mapping_settings(template: Mapping[str, Any], function_name: str,
                     variables: Mapping[str, str] | None = None) -> MappingSettings:
    """Settings of Chalice function `function_name`'s event source in a (merge) template.

    Looks in the function's SAM `Events` and in any AWS::Lambda::EventSourceMapping naming the function;
    `Fn::Sub` strings are resolved with `variables` (Stage, AWS::Region, AWS::AccountId, AWS::Partition).
    """
    logical_id = to_cfn_resource_name(function_name)
    found: dict[str, Any] = {}
    for resource_id, resource in (template.get("Resources") or {}).items():
        if not isinstance(resource, Mapping):
            continue
        properties = resource.get("Properties") or {}
        if not isinstance(properties, Mapping):
            continue
        if resource_id == logical_id:
            for event in (properties.get("Events") or {}).values():
                if isinstance(event, Mapping) and isinstance(event.get("Properties"), Mapping):
                    found.update(event["Properties"])
        elif (resource.get("Type") == "AWS::Lambda::EventSourceMapping"
              and logical_id in _referenced_ids(properties.get("FunctionName"))):
            found.update(properties)
    destination = ((found.get("DestinationConfig") or {}).get("OnFailure") or {}).get("Destination")
    retries = found.get("MaximumRetryAttempts")
    age = found.get("MaximumRecordAgeInSeconds")
    return MappingSettings(
        report_failures=REPORT_BATCH_ITEM_FAILURES in (found.get("FunctionResponseTypes") or []),
        max_retry_attempts=int(retries) if retries is not None else None,
        bisect_on_error=bool(found.get("BisectBatchOnFunctionError", False)),
        max_record_age=int(age) if age is not None and int(age) >= 0 else None,
        on_failure_arn=_resolve(destination, variables or {}) if destination is not None else None,
    )


def load_mapping_settings(function_name: str, variables: Mapping[str, str] | None = None,
                          path: Path = MERGE_TEMPLATE_PATH) -> MappingSettings:
    """`mapping_settings` from the merge template, or Lambda's defaults when there is none."""
    if not path.exists():
        return MappingSettings()
    return mapping_settings(parse_template(path.read_text()), function_name, variables)


def template_variables(stage: str, region: str = "us-east-1", account: str = "123456789012") -> dict[str, str]:
    """What `Fn::Sub` may name in the merge template."""
    return {"Stage": stage, "AWS::Region": region, "AWS::AccountId": account, "AWS::Partition": "aws"}


def _resolve(value: Any, variables: Mapping[str, str]) -> str:
    if isinstance(value, Mapping) and "Fn::Sub" in value:
        text = value["Fn::Sub"]
        text = text[0] if isinstance(text, list) else text
        return re.sub(r"\$\{([^}]+)\}", lambda m: variables.get(m.group(1), m.group(0)), str(text))
    return str(value)


def _referenced_ids(value: Any) -> set[str]:
    if isinstance(value, str):
        return {value}
    if isinstance(value, Mapping):
        if "Ref" in value:
            return {str(value["Ref"])}
        if "Fn::GetAtt" in value:
            target = value["Fn::GetAtt"]
            return {str(target[0] if isinstance(target, list) else str(target).split(".")[0])}
    return set()
