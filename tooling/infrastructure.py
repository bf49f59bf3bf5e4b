"""Deploy the one infrastructure template (infra/template.yaml) as a CloudFormation stack.

Used by `python -m ops provision` and by the local stack (both import it from here), against AWS or the emulator
(`AWS_ENDPOINT_URL`). The stack's Outputs map onto the SPEC's environment variables.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from chalicelib.config import DEFAULT_METRICS_NAMESPACE

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
    "DeadLetterBucket": "DEAD_LETTER_BUCKET",
}


def stack_name(stage: str) -> str:
    """`stream-pipeline-<stage>`."""
    return f"stream-pipeline-{stage}"


def stage_environment(outputs: Mapping[str, str]) -> dict[str, str]:
    """The SPEC's environment variables for a stack's outputs (plus their defaults)."""
    variables = {variable: outputs[output] for output, variable in OUTPUT_VARIABLES.items()}
    variables.setdefault("EVENT_SOURCE", DEFAULT_EVENT_SOURCE)
    variables.setdefault("FANOUT_MAX_ATTEMPTS", "3")
    variables.setdefault("METRICS_NAMESPACE", DEFAULT_METRICS_NAMESPACE)
    return variables


def deploy_stack(cloudformation: Any, stage: str, template_body: str | None = None,
                 timeout: float = 900.0, poll: float = 2.0, parameters: Mapping[str, str] | None = None
                 ) -> dict[str, str]:
    """Create or update the stage's stack, wait until it settles, and return its outputs.

    `parameters`: template parameters besides `Stage` (e.g. `MetricsNamespace`, `AlarmEmail`).

    Raises RuntimeError naming the resources that failed (from the stack's events) when CloudFormation
    rolls back, and when a failed first creation left a stack that can only be deleted.
    """
    name = stack_name(stage)
    body = template_body if template_body is not None else TEMPLATE_PATH.read_text()
    params = {
        "StackName": name,
        "TemplateBody": body,
        "Parameters": [{"ParameterKey": key, "ParameterValue": value}
                       for key, value in {"Stage": stage, **(parameters or {})}.items()],
    }
    existing = _current_status(cloudformation, name)
    if existing is None:
        cloudformation.create_stack(**params)
    else:
        if stack_state(existing) == "waiting":  # another deployment is running: let it finish first
            existing = _wait(cloudformation, name, timeout, poll, accept_rollback=True)["StackStatus"]
        if existing == "ROLLBACK_COMPLETE":
            raise RuntimeError(f"stack {name} is ROLLBACK_COMPLETE (its first creation failed) and cannot be "
                               f"updated: delete it (tables are retained) and provision again")
        try:
            cloudformation.update_stack(**params)
        except ClientError as error:
            if "No updates are to be performed" not in str(error):
                raise
            return _outputs(cloudformation.describe_stacks(StackName=name)["Stacks"][0])
    return _outputs(_wait(cloudformation, name, timeout, poll))


def stack_state(status: str) -> str:
    """What a CloudFormation stack status means here: "done", "failed" or "waiting" (pure)."""
    if status.startswith("DELETE_"):
        return "failed"  # gone or going: never wait on it, never update it
    if status.endswith("_IN_PROGRESS"):
        return "waiting"
    if status.endswith("_FAILED") or "ROLLBACK" in status:
        return "failed"
    if status.endswith("_COMPLETE"):
        return "done"
    return "failed"  # e.g. DELETE_COMPLETE, or a status this code does not know


def _outputs(stack: dict[str, Any]) -> dict[str, str]:
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def _current_status(cloudformation: Any, name: str) -> str | None:
    try:
        stacks = cloudformation.describe_stacks(StackName=name)["Stacks"]
    except ClientError as error:
        if "does not exist" in str(error):
            return None
        raise
    if not stacks or stacks[0]["StackStatus"] == "DELETE_COMPLETE":
        return None
    return str(stacks[0]["StackStatus"])


def _wait(cloudformation: Any, name: str, timeout: float, poll: float,
          accept_rollback: bool = False) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        stack = cloudformation.describe_stacks(StackName=name)["Stacks"][0]
        status = stack["StackStatus"]
        state = stack_state(status)
        if state == "done" or (accept_rollback and state == "failed"):
            return dict(stack)
        if state == "failed":
            reasons = _failure_reasons(cloudformation, name)
            raise RuntimeError(f"stack {name} ended {status}: {stack.get('StackStatusReason', '')}"
                               + (f"; failed: {reasons}" if reasons else ""))
        if time.monotonic() > deadline:
            raise TimeoutError(f"stack {name} still {status} after {timeout:.0f}s")
        time.sleep(poll)


def _failure_reasons(cloudformation: Any, name: str, limit: int = 5) -> str:
    """The first resources that failed in the latest events (what an operator needs to fix)."""
    try:
        events = cloudformation.describe_stack_events(StackName=name)["StackEvents"]
    except ClientError:
        return ""
    failed = [f"{e['LogicalResourceId']} ({e.get('ResourceStatusReason', e['ResourceStatus'])})"
              for e in events if str(e.get("ResourceStatus", "")).endswith("_FAILED")
              and e.get("LogicalResourceId") != name]
    return "; ".join(failed[:limit])
