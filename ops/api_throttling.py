"""API stage throttling, read from infra/merge-template.yaml — the one place the limits are written.

`chalice package --merge-template` puts them on the API stage (the `RestAPI`'s `MethodSettings`, whose values
come from `Mappings.ApiThrottling.<stage>`). Plain `chalice deploy` cannot set them, so
`python -m ops provision --stage STAGE --api-throttling` applies the same limits to the stage `chalice deploy`
created (UpdateStage on every method, `/*/*`): both deploy paths end with the same limits.

`stage_throttling` is pure (template text in, limits out); `deployed_rest_api` reads chalice's deployed state;
`StageThrottler` is the adapter.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ops.stage import load_config

MAPPING = "ApiThrottling"  # Mappings.<MAPPING>.<stage>.{RateLimit, BurstLimit} in the merge template
EVERY_METHOD = "*/*"  # API Gateway's key for stage-wide method settings


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
    template = yaml.safe_load(template_text) or {}
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


def deployed_rest_api(config_path: Path, stage: str) -> tuple[str, str]:
    """(REST API id, API Gateway stage name) that `chalice deploy --stage STAGE` recorded in `deployed/<stage>.json`
    beside the config file (LookupError when that deploy has not run)."""
    from chalice.config import Config
    from chalice.constants import DEFAULT_APIGATEWAY_STAGE_NAME

    config = Config(chalice_stage=stage, user_provided_params={"project_dir": str(config_path.parent.parent)},
                    config_from_disk=load_config(config_path))
    try:
        rest_api = config.deployed_resources(stage).resource_values("rest_api")
    except ValueError:  # chalice's "Resource does not exist"
        raise LookupError(f"no REST API recorded for stage {stage} in .chalice/deployed/{stage}.json: "
                          f"run `chalice deploy --stage {stage}` first") from None
    return rest_api["rest_api_id"], config.api_gateway_stage or DEFAULT_APIGATEWAY_STAGE_NAME


@dataclass
class StageThrottler:
    """Sets a stage's limits through API Gateway. `calls` counts its requests (throttled ones are retried by
    botocore's own retry handler: one UpdateStage is all this needs)."""

    apigateway_client: Any
    calls: int = 0

    def apply(self, rest_api_id: str, stage_name: str, throttling: Throttling) -> dict[str, Any]:
        """The stage's method settings for every method, as API Gateway answers after the update
        (RuntimeError when they do not carry the limits asked for)."""
        self.calls += 1
        stage = self.apigateway_client.update_stage(restApiId=rest_api_id, stageName=stage_name,
                                                    patchOperations=throttling.patch_operations())
        settings: dict[str, Any] = (stage.get("methodSettings") or {}).get(EVERY_METHOD) or {}
        if not throttling.matches(settings):
            raise RuntimeError(f"stage {stage_name} of REST API {rest_api_id} answered {settings or 'no limits'}, "
                               f"not rate {throttling.rate_limit:g}/s and burst {throttling.burst_limit}")
        return settings


def _decimal(value: float) -> str:
    """A rate as API Gateway reads it: `100`, `12.5` (never `1e+02`)."""
    return f"{value:f}".rstrip("0").rstrip(".")
