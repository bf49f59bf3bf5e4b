"""API stage throttling, as infra/merge-template.yaml sets it — the one place the limits are written.

`chalice package --merge-template` puts them on the API stage (the `RestAPI`'s `MethodSettings`, whose values
come from `Mappings.ApiThrottling.<stage>`). Plain `chalice deploy` cannot set them, so
`python -m ops provision --stage STAGE --api-throttling` applies the same limits to the stage `chalice deploy`
created (UpdateStage on every method, `/*/*`): both deploy paths end with the same limits.

`tooling.merge_template.stage_throttling` reads the limits (pure); `deployed_rest_api` reads chalice's deployed
state; `StageThrottler` is the adapter.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tooling.merge_template import EVERY_METHOD, Throttling
from tooling.stage import load_config


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
