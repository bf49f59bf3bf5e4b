"""Deploy the one infrastructure template (infra/template.yaml) as a CloudFormation stack.

Used by `python -m ops provision` and by the local stack, against AWS or the emulator
(`AWS_ENDPOINT_URL`). The stack's Outputs map onto the SPEC's environment variables.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

TEMPLATE_PATH = Path(__file__).resolve().parents[1] / "infra" / "template.yaml"
DEFAULT_EVENT_SOURCE = "stream-pipeline.users"

# Stack output → environment variable of the SPEC.
OUTPUT_VARIABLES = {
    "UsersTable": "USERS_TABLE",
    "UsersStreamArn": "USERS_STREAM_ARN",
    "UsersByLocationTable": "USERS_BY_LOCATION_TABLE",
    "DeviceMetadataTable": "DEVICE_METADATA_TABLE",
    "IngestQueueName": "INGEST_QUEUE",
    "IngestDlqUrl": "INGEST_DLQ_URL",
    "OrdersTable": "ORDERS_TABLE",
    "OrdersStreamArn": "ORDERS_STREAM_ARN",
    "EventBusName": "EVENT_BUS_NAME",
    "StreamDlqUrl": "STREAM_DLQ_URL",
}


def stack_name(stage: str) -> str:
    """`stream-pipeline-<stage>`."""
    return f"stream-pipeline-{stage}"


def stage_environment(outputs: Mapping[str, str]) -> dict[str, str]:
    """The SPEC's environment variables for a stack's outputs (plus their defaults)."""
    variables = {variable: outputs[output] for output, variable in OUTPUT_VARIABLES.items()}
    variables.setdefault("EVENT_SOURCE", DEFAULT_EVENT_SOURCE)
    variables.setdefault("FANOUT_MAX_ATTEMPTS", "3")
    return variables


def deploy_stack(cloudformation: Any, stage: str, template_body: str | None = None,
                 timeout: float = 900.0, poll: float = 2.0) -> dict[str, str]:
    """Create or update the stage's stack, wait until it settles, and return its outputs."""
    name = stack_name(stage)
    body = template_body if template_body is not None else TEMPLATE_PATH.read_text()
    params = {
        "StackName": name,
        "TemplateBody": body,
        "Parameters": [{"ParameterKey": "Stage", "ParameterValue": stage}],
    }
    if _stack_exists(cloudformation, name):
        try:
            cloudformation.update_stack(**params)
        except ClientError as error:
            if "No updates are to be performed" not in str(error):
                raise
    else:
        cloudformation.create_stack(**params)
    stack = _wait(cloudformation, name, timeout, poll)
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def _stack_exists(cloudformation: Any, name: str) -> bool:
    try:
        stacks = cloudformation.describe_stacks(StackName=name)["Stacks"]
    except ClientError as error:
        if "does not exist" in str(error):
            return False
        raise
    return bool(stacks) and stacks[0]["StackStatus"] != "DELETE_COMPLETE"


def _wait(cloudformation: Any, name: str, timeout: float, poll: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        stack = cloudformation.describe_stacks(StackName=name)["Stacks"][0]
        status = stack["StackStatus"]
        if status.endswith("_COMPLETE") and "ROLLBACK" not in status:
            return stack
        if status.endswith("_FAILED") or "ROLLBACK" in status and status.endswith("_COMPLETE"):
            raise RuntimeError(f"stack {name} ended {status}: {stack.get('StackStatusReason', '')}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"stack {name} still {status} after {timeout:.0f}s")
        time.sleep(poll)
