"""Applying the merge template's event source settings to the mappings `chalice deploy` created.

`chalice package --merge-template` puts infra/merge-template.yaml's failure settings into the
CloudFormation path. Plain `chalice deploy` cannot express them, so `python -m ops provision --stage STAGE
--event-sources` applies the same settings (read by `tooling.merge_template`) to the deployed mappings:
both deploy paths end with the same mappings. `MappingTuner` is the adapter.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from chalicelib.backoff import Backoff
from chalicelib.retry import CallStats, retry_request


@dataclass
class MappingTuner:
    """Applies settings to every event source mapping of each function. `calls` counts Lambda requests."""

    lambda_client: Any
    # A mapping chalice just created stays "Creating" (ResourceInUseException, retryable) for a few seconds.
    backoff: Backoff = field(default_factory=lambda: Backoff(max_attempts=10, base=0.5, cap=8.0))
    stats: CallStats = field(default_factory=CallStats)

    @property
    def calls(self) -> int:
        """Lambda requests made so far."""
        return self.stats.calls

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
            list_page = partial(self.lambda_client.list_event_source_mappings, **({"Marker": marker} if marker else {}))
            page = retry_request(list_page, self.backoff, self.stats)
            for mapping in page.get("EventSourceMappings", []):
                name = mapping["FunctionArn"].split(":function:", 1)[-1].split(":", 1)[0]
                found.setdefault(name, []).append(mapping["UUID"])
            marker = page.get("NextMarker")
            if not marker:
                return found

    def _update(self, uuid: str, values: Mapping[str, Any]) -> None:
        retry_request(lambda: self.lambda_client.update_event_source_mapping(UUID=uuid, **values), self.backoff,
                      self.stats)
