"""Event source failure settings, read from infra/merge-template.yaml — the one place they are written.

`chalice package --merge-template` puts them into the CloudFormation path. Plain `chalice deploy` cannot
express them, so `python -m ops provision --stage STAGE --event-sources` applies the same settings to the
mappings `chalice deploy` created: both deploy paths end with the same mappings.

`mapping_settings` is pure (template text in, settings per function out); `MappingTuner` is the adapter.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from botocore.exceptions import ClientError

from chalicelib.backoff import Backoff

MERGE_TEMPLATE_PATH = Path(__file__).resolve().parents[1] / "infra" / "merge-template.yaml"

# SAM event properties that are event source mapping settings of the same name in Lambda's API.
MAPPING_SETTINGS = ("BisectBatchOnFunctionError", "MaximumRetryAttempts", "MaximumRecordAgeInSeconds",
                    "DestinationConfig", "FunctionResponseTypes")


@dataclass(frozen=True)
class Scope:
    """What CloudFormation would substitute: the Stage parameter and the pseudo parameters."""

    stage: str
    partition: str
    region: str
    account: str

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


def mapping_settings(template_text: str, scope: Scope) -> dict[str, dict[str, Any]]:
    """Function name → the settings its event source mapping must carry, for the stage in `scope`.

    A function the template names without event settings is absent; every function with settings must
    have its FunctionName in the template (ValueError otherwise: it could not be found after deploy).
    """
    template = yaml.safe_load(template_text) or {}
    settings: dict[str, dict[str, Any]] = {}
    for logical_id, resource in (template.get("Resources") or {}).items():
        properties = (resource or {}).get("Properties") or {}
        events = properties.get("Events") or {}
        chosen: dict[str, Any] = {}
        for event in events.values():
            event_properties = (event or {}).get("Properties") or {}
            chosen.update({k: scope.substitute(v) for k, v in event_properties.items() if k in MAPPING_SETTINGS})
        if not chosen:
            continue
        if "FunctionName" not in properties:
            raise ValueError(f"{logical_id} has event settings but no FunctionName in the merge template")
        settings[scope.substitute(properties["FunctionName"])] = chosen
    return settings


@dataclass
class MappingTuner:
    """Applies settings to every event source mapping of each function. `calls` counts Lambda requests."""

    lambda_client: Any
    backoff: Backoff = field(default_factory=lambda: Backoff(max_attempts=10, base=0.5, cap=8.0))
    calls: int = 0

    def apply(self, settings: Mapping[str, Mapping[str, Any]]) -> dict[str, list[str]]:
        """Function name → UUIDs of the mappings updated (LookupError, before any update, when one has none)."""
        by_function = self._mappings_by_function()
        missing = sorted(set(settings) - set(by_function))
        if missing:
            raise LookupError(f"{', '.join(missing)} has no event source mapping: run `chalice deploy` first")
        for function, values in settings.items():
            for uuid in by_function[function]:
                self._update(uuid, values)
        return {function: by_function[function] for function in settings}

    def _mappings_by_function(self) -> dict[str, list[str]]:
        # Listed whole and grouped by the function name in FunctionArn: a FunctionName filter is matched
        # against how the mapping was created (name or ARN) by some emulators.
        found: dict[str, list[str]] = {}
        marker: str | None = None
        while True:
            self.calls += 1
            page = self.lambda_client.list_event_source_mappings(**({"Marker": marker} if marker else {}))
            for mapping in page.get("EventSourceMappings", []):
                name = mapping["FunctionArn"].split(":function:", 1)[-1].split(":", 1)[0]
                found.setdefault(name, []).append(mapping["UUID"])
            marker = page.get("NextMarker")
            if not marker:
                return found

    def _update(self, uuid: str, values: Mapping[str, Any]) -> None:
        attempt = 0
        while True:
            attempt += 1
            self.calls += 1
            try:
                self.lambda_client.update_event_source_mapping(UUID=uuid, **values)
                return
            except ClientError as error:
                # A mapping chalice just created is still "Creating" for a few seconds: wait for it.
                if error.response.get("Error", {}).get("Code") != "ResourceInUseException" \
                        or attempt >= self.backoff.max_attempts:
                    raise
                self.backoff.wait(attempt)
