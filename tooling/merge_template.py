"""The one reader of infra/merge-template.yaml: each function's event source mapping settings, and each
stage's API throttling.

`chalice package --merge-template` merges the file into Chalice's SAM output; nothing else can set
these (Chalice's decorators cannot). Two tools need the same settings without CloudFormation:
`python -m ops provision --event-sources` applies them to the mappings `chalice deploy` created, and the
local stack gives its pollers the semantics they ask for (Lambda honours `batchItemFailures` only when
`FunctionResponseTypes` lists `ReportBatchItemFailures`, bisects and caps retries only when told to,
and sends a failure record only to a configured on-failure destination).

The file is plain YAML with long-form intrinsics (`Fn::Sub`), so `yaml.safe_load` reads it; CloudFormation
short tags (`!Sub`) are refused there with a clear error, which keeps the file readable by any tool.
Functions are found by their SAM logical id, which Chalice derives from the handler name
(`chalice.utils.to_cfn_resource_name`: `replicate_users` → `ReplicateUsers`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from chalice.utils import to_cfn_resource_name

MERGE_TEMPLATE_PATH = Path(__file__).resolve().parents[1] / "infra" / "merge-template.yaml"
MAPPING = "ApiThrottling"  # Mappings.<MAPPING>.<stage>.{RateLimit, BurstLimit} in the merge template
EVERY_METHOD = "*/*"  # API Gateway's key for stage-wide method settings
REPORT_BATCH_ITEM_FAILURES = "ReportBatchItemFailures"

# SAM event properties that are event source mapping settings of the same name in Lambda's API.
MAPPING_SETTINGS = ("BisectBatchOnFunctionError", "MaximumRetryAttempts", "MaximumRecordAgeInSeconds",
                    "DestinationConfig", "FunctionResponseTypes")


@dataclass(frozen=True)
class Scope:
    """What CloudFormation would substitute: the Stage parameter and the pseudo parameters."""

    stage: str
    partition: str = "aws"
    region: str = "us-east-1"
    account: str = "123456789012"

    def substitute(self, value: Any) -> Any:
        """Resolve `Fn::Sub` strings (the only intrinsic the merge template uses) anywhere in `value`."""
        if isinstance(value, dict):
            if set(value) == {"Fn::Sub"}:
                text = value["Fn::Sub"]
                if not isinstance(text, str):
                    raise ValueError(f"only the one-string form of Fn::Sub is supported: {value!r}")
                for name, resolved in (("Stage", self.stage), ("AWS::Partition", self.partition),
                                       ("AWS::Region", self.region), ("AWS::AccountId", self.account)):
                    text = text.replace("${" + name + "}", resolved)
                if "${" in text:
                    raise ValueError(f"unresolved reference in Fn::Sub: {text!r}")
                return text
            return {key: self.substitute(inner) for key, inner in value.items()}
        if isinstance(value, list):
            return [self.substitute(inner) for inner in value]
        return value


def template_variables(stage: str, region: str = "us-east-1", account: str = "123456789012") -> Scope:
    """The substitutions for a stage in `region` of `account` (the local stack's placeholder account by default)."""
    return Scope(stage, "aws", region, account)


@dataclass(frozen=True)
class FunctionMapping:
    """One function's mapping settings: its SAM logical id, its deployed name, the settings (resolved)."""

    logical_id: str
    function_name: str
    settings: dict[str, Any]


def function_mappings(template_text: str, scope: Scope) -> dict[str, FunctionMapping]:
    """Logical id → the settings of that function's event source mapping, for the stage in `scope`.

    A function without event settings is absent; a function with settings must name its FunctionName
    (ValueError otherwise: it could not be found after `chalice deploy`).
    """
    template = _document(template_text)
    found: dict[str, FunctionMapping] = {}
    for logical_id, resource in (template.get("Resources") or {}).items():
        properties = (resource or {}).get("Properties") or {}
        chosen: dict[str, Any] = {}
        for event in (properties.get("Events") or {}).values():
            event_properties = (event or {}).get("Properties") or {}
            chosen.update({k: scope.substitute(v) for k, v in event_properties.items() if k in MAPPING_SETTINGS})
        if not chosen:
            continue
        if "FunctionName" not in properties:
            raise ValueError(f"{logical_id} has event settings but no FunctionName in the merge template")
        found[logical_id] = FunctionMapping(logical_id, scope.substitute(properties["FunctionName"]), chosen)
    return found


def mapping_settings(template_text: str, scope: Scope) -> dict[str, dict[str, Any]]:
    """Deployed function name → the settings its event source mapping must carry."""
    return {m.function_name: m.settings for m in function_mappings(template_text, scope).values()}


@dataclass(frozen=True)
class MappingSettings:
    """An event source mapping's failure settings, typed; the defaults are Lambda's when nothing is set."""

    report_failures: bool = False  # FunctionResponseTypes: [ReportBatchItemFailures]
    max_retry_attempts: int | None = None  # None: the caller's own cap
    bisect_on_error: bool = False  # BisectBatchOnFunctionError
    max_record_age: int | None = None  # MaximumRecordAgeInSeconds; None (or -1 in the template): no limit
    on_failure_arn: str | None = None  # DestinationConfig.OnFailure.Destination (an SQS queue here)

    @classmethod
    def of(cls, settings: Mapping[str, Any]) -> MappingSettings:
        """The typed view of Lambda API settings (as `function_mappings` returns them)."""
        destination = ((settings.get("DestinationConfig") or {}).get("OnFailure") or {}).get("Destination")
        retries = settings.get("MaximumRetryAttempts")
        age = settings.get("MaximumRecordAgeInSeconds")
        return cls(
            report_failures=REPORT_BATCH_ITEM_FAILURES in (settings.get("FunctionResponseTypes") or []),
            max_retry_attempts=int(retries) if retries is not None else None,
            bisect_on_error=bool(settings.get("BisectBatchOnFunctionError", False)),
            max_record_age=int(age) if age is not None and int(age) >= 0 else None,
            on_failure_arn=str(destination) if destination is not None else None,
        )


def load_mapping_settings(handler_name: str, scope: Scope, path: Path = MERGE_TEMPLATE_PATH) -> MappingSettings:
    """Settings of the mapping of Chalice handler `handler_name`; Lambda's defaults without a merge template."""
    if not path.exists():
        return MappingSettings()
    mapping = function_mappings(path.read_text(), scope).get(to_cfn_resource_name(handler_name))
    return MappingSettings.of(mapping.settings) if mapping is not None else MappingSettings()


@dataclass(frozen=True)
class Throttling:
    """A stage's limits: steady requests per second and the burst (token bucket) over every method."""

    rate_limit: float
    burst_limit: int

    def patch_operations(self) -> list[dict[str, str]]:
        """UpdateStage operations that set these limits on every method of the stage."""
        return [
            {"op": "replace", "path": f"/{EVERY_METHOD}/throttling/rateLimit", "value": _decimal(self.rate_limit)},
            {"op": "replace", "path": f"/{EVERY_METHOD}/throttling/burstLimit", "value": str(self.burst_limit)},
        ]

    def matches(self, method_settings: dict[str, Any]) -> bool:
        """Whether API Gateway's `methodSettings` entry carries these limits."""
        return (float(method_settings.get("throttlingRateLimit", -1)) == self.rate_limit
                and int(method_settings.get("throttlingBurstLimit", -1)) == self.burst_limit)


def stage_throttling(template_text: str, stage: str) -> Throttling:
    """The limits the merge template sets for `stage` (ValueError naming what is missing or invalid)."""
    template = _document(template_text)
    stages = (template.get("Mappings") or {}).get(MAPPING)
    if not isinstance(stages, dict):
        raise ValueError(f"the merge template has no Mappings.{MAPPING}")
    limits = stages.get(stage)
    if not isinstance(limits, dict):
        raise ValueError(f"stage {stage} has no API throttling in the merge template: add Mappings.{MAPPING}.{stage} "
                         f"with RateLimit and BurstLimit ({', '.join(sorted(stages))} have them)")
    rate, burst = limits.get("RateLimit"), limits.get("BurstLimit")
    if isinstance(rate, bool) or not isinstance(rate, int | float) or rate <= 0:
        raise ValueError(f"Mappings.{MAPPING}.{stage}.RateLimit must be a number of requests per second > 0, "
                         f"got {rate!r}")
    if isinstance(burst, bool) or not isinstance(burst, int) or burst < 1:
        raise ValueError(f"Mappings.{MAPPING}.{stage}.BurstLimit must be a whole number of requests >= 1, "
                         f"got {burst!r}")
    return Throttling(float(rate), burst)


def _decimal(value: float) -> str:
    """A rate as API Gateway reads it: `100`, `12.5` (never `1e+02`)."""
    return f"{value:f}".rstrip("0").rstrip(".")


def _document(template_text: str) -> dict[str, Any]:
    document = yaml.safe_load(template_text)
    return document if isinstance(document, dict) else {}
