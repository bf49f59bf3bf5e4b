"""Stage resources in moto, created by CloudFormation from the real infrastructure template."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3

TEMPLATE = Path(__file__).resolve().parents[2] / "infra" / "template.yaml"
STAGE = "test"


@dataclass
class StageResources:
    """Names, URLs and ARNs of one stage's resources (the template's Outputs)."""

    outputs: dict[str, str]

    def __getitem__(self, output: str) -> str:
        return self.outputs[output]

    def env(self) -> dict[str, str]:
        """The SPEC's environment variables for these resources."""
        o = self.outputs
        return {
            "USERS_TABLE": o["UsersTable"],
            "USERS_STREAM_ARN": o["UsersStreamArn"],
            "USERS_BY_LOCATION_TABLE": o["UsersByLocationTable"],
            "DEVICE_METADATA_TABLE": o["DeviceMetadataTable"],
            "INGEST_QUEUE": o["IngestQueueName"],
            "INGEST_DLQ_URL": o["IngestDlqUrl"],
            "ORDERS_TABLE": o["OrdersTable"],
            "ORDERS_STREAM_ARN": o["OrdersStreamArn"],
            "EVENT_BUS_NAME": o["EventBusName"],
            "EVENT_SOURCE": "stream-pipeline.users",
            "STREAM_DLQ_URL": o["StreamDlqUrl"],
            "FANOUT_MAX_ATTEMPTS": "3",
        }


def deploy_stage(stage: str = STAGE, session: Any = None) -> StageResources:
    """Create the template's stack for `stage` and return its outputs."""
    cloudformation = (session or boto3).client("cloudformation")
    name = f"stream-pipeline-{stage}"
    cloudformation.create_stack(
        StackName=name,
        TemplateBody=TEMPLATE.read_text(),
        Parameters=[{"ParameterKey": "Stage", "ParameterValue": stage}],
    )
    stack = cloudformation.describe_stacks(StackName=name)["Stacks"][0]
    if stack["StackStatus"] != "CREATE_COMPLETE":
        raise RuntimeError(f"stack {name} is {stack['StackStatus']}: {stack.get('StackStatusReason')}")
    return StageResources({o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])})
