"""Stage resources in moto, created by CloudFormation from the real infrastructure template."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import boto3

from tooling.infrastructure import deploy_stack, stage_environment

STAGE = "test"


@dataclass
class StageResources:
    """Names, URLs and ARNs of one stage's resources (the template's Outputs)."""

    outputs: dict[str, str]

    def __getitem__(self, output: str) -> str:
        return self.outputs[output]

    def env(self) -> dict[str, str]:
        """The SPEC's environment variables for these resources."""
        return stage_environment(self.outputs)


def deploy_stage(stage: str = STAGE, session: Any = None) -> StageResources:
    """Create the template's stack for `stage` (in whatever moto/AWS the session points at)."""
    return StageResources(deploy_stack((session or boto3).client("cloudformation"), stage, poll=0.05))
