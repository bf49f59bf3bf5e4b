"""The table scanner's requests go through the one retry primitive: throttling and 5xx are retried, the rest
is raised at once as botocore raised it (moto tables, real error shapes)."""

from __future__ import annotations

import boto3
import pytest
from botocore.exceptions import ClientError

from chalicelib.backoff import Backoff
from ops.table_scan import TableScanner
from tests.ops.ops_support import put_items, user
from tests.support.faults import FaultyClient, aws_error, raising_first
from tests.support.resources import StageResources


def test_a_throttled_or_failing_scan_page_is_retried_with_backoff(aws: StageResources) -> None:
    # GIVEN 30 users, and a Scan answered first with throttling, then with a 500
    put_items(aws["UsersTable"], [user(n) for n in range(30)])
    faults = raising_first(aws_error("dynamodb", "Scan", "ProvisionedThroughputExceededException"),
                           aws_error("dynamodb", "Scan", "InternalServerError", status=500))
    slept: list[float] = []
    scanner = TableScanner(FaultyClient(boto3.client("dynamodb"), scan=faults), aws["UsersTable"],
                           backoff=Backoff(sleep=slept.append))

    # WHEN the table is scanned
    items = [item for page in scanner.pages() for item in page.items]

    # THEN every user is read, after two waits, and the three requests are counted
    assert len(items) == 30
    assert len(slept) == 2 and scanner.calls == 3


@pytest.mark.parametrize("code", ["AccessDeniedException", "ResourceNotFoundException"])
def test_a_systemic_error_is_raised_at_once_as_botocore_raised_it(aws: StageResources, code: str) -> None:
    denied = aws_error("dynamodb", "Scan", code)
    slept: list[float] = []
    scanner = TableScanner(FaultyClient(boto3.client("dynamodb"), scan=raising_first(denied, denied)),
                           aws["UsersTable"], backoff=Backoff(sleep=slept.append))

    with pytest.raises(ClientError) as raised:
        scanner.count()

    assert raised.value is denied and slept == [] and scanner.calls == 1


def test_throttling_outlasting_the_attempts_raises_the_last_error(aws: StageResources) -> None:
    errors = [aws_error("dynamodb", "DescribeTable", "ThrottlingException") for _ in range(3)]
    scanner = TableScanner(FaultyClient(boto3.client("dynamodb"), describe_table=raising_first(*errors)),
                           aws["UsersTable"], backoff=Backoff(max_attempts=3, sleep=lambda _: None))

    with pytest.raises(ClientError) as raised:
        scanner.describe()

    assert raised.value is errors[-1] and scanner.calls == 3
