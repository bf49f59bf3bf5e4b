"""tooling.infrastructure.deploy_stack: create, update, no-op update, and the stack states it refuses to touch."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from tests.support.faults import FaultyClient
from tooling.infrastructure import OUTPUT_VARIABLES, TEMPLATE_PATH, deploy_stack, stack_name, stack_state


@pytest.mark.parametrize("status, state", [
    ("CREATE_COMPLETE", "done"), ("UPDATE_COMPLETE", "done"), ("IMPORT_COMPLETE", "done"),
    ("CREATE_IN_PROGRESS", "waiting"), ("UPDATE_COMPLETE_CLEANUP_IN_PROGRESS", "waiting"),
    ("UPDATE_ROLLBACK_IN_PROGRESS", "waiting"), ("ROLLBACK_IN_PROGRESS", "waiting"),
    ("CREATE_FAILED", "failed"), ("ROLLBACK_COMPLETE", "failed"), ("UPDATE_ROLLBACK_COMPLETE", "failed"),
    ("UPDATE_ROLLBACK_FAILED", "failed"), ("DELETE_COMPLETE", "failed"), ("DELETE_IN_PROGRESS", "failed"),
    ("SOMETHING_NEW", "failed"),
])
def test_stack_state(status: str, state: str) -> None:
    assert stack_state(status) == state


@pytest.fixture
def cloudformation() -> Iterator[Any]:
    with mock_aws():
        yield boto3.client("cloudformation")


def test_create_then_unchanged_update_returns_the_same_outputs(cloudformation: Any) -> None:
    created = deploy_stack(cloudformation, "qa", poll=0.01)
    again = deploy_stack(cloudformation, "qa", poll=0.01)

    assert again == created
    assert set(OUTPUT_VARIABLES) <= set(created)
    assert created["UsersTable"] == "stream-pipeline-qa-users"


def test_an_update_adds_what_the_template_adds(cloudformation: Any) -> None:
    deploy_stack(cloudformation, "qa", poll=0.01)
    body = TEMPLATE_PATH.read_text() + "  Extra:\n    Value: !Ref Stage\n"

    outputs = deploy_stack(cloudformation, "qa", template_body=body, poll=0.01)

    assert outputs["Extra"] == "qa"


def test_a_stack_whose_first_creation_failed_is_not_updated(cloudformation: Any) -> None:
    # GIVEN a stack CloudFormation reports as ROLLBACK_COMPLETE (its creation failed: only deletion works)
    deploy_stack(cloudformation, "qa", poll=0.01)

    def rolled_back(real: Any, **kwargs: Any) -> Any:
        answer = real(**kwargs)
        answer["Stacks"][0]["StackStatus"] = "ROLLBACK_COMPLETE"
        return answer

    faulty = FaultyClient(cloudformation, describe_stacks=rolled_back)
    body = TEMPLATE_PATH.read_text() + "  Extra:\n    Value: !Ref Stage\n"

    # WHEN provisioning again   THEN it says what to do, and the stack is not touched
    with pytest.raises(RuntimeError, match="ROLLBACK_COMPLETE .* delete it"):
        deploy_stack(faulty, "qa", template_body=body, poll=0.01)
    stack = cloudformation.describe_stacks(StackName=stack_name("qa"))["Stacks"][0]
    assert "Extra" not in {o["OutputKey"] for o in stack["Outputs"]}
