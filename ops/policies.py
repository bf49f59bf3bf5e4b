"""Least-privilege IAM policies, one per Lambda function and stage (pure: stage variables in, documents out).

Chalice runs with `autogen_policy` off; each function's role gets the file `.chalice/policies/<stage>/
<function>.json`, which `python -m ops provision` regenerates from the ARNs it just recorded. Every
statement names the stage's own resources; the one `"Resource": "*"` is `dynamodb:ListStreams`, which
IAM cannot scope to a stream or table (it has no resource type), and Lambda's stream poller calls it.
A function may put dead letters only under its own consumer's prefix of DEAD_LETTER_BUCKET, and only in
the stage's account (`s3:ResourceAccount`: a bucket name is global).

The operator's side is declared here too: `operator-redrive.json` beside the function policies is what a
role running `python -m ops redrive` needs (read and delete letters, replay them through each consumer,
read and delete the S3 objects of large letters). Attach it to the operator's role or group.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

APP_NAME = "stream-pipeline"
POLICIES_DIR = "policies"  # under .chalice/, where Chalice resolves `iam_policy_file`

STREAM_READ = ("dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator")
# Sending letters; the queue's MaximumMessageSize (read once per process) sizes the batches.
DEAD_LETTER_QUEUE = ("sqs:SendMessage", "sqs:GetQueueAttributes")
LOGS = ("logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents")
OPERATOR_REDRIVE = "operator-redrive"  # policy file of the `ops redrive` role, beside the functions' files


@dataclass(frozen=True)
class StageArns:
    """ARNs of one stage's resources, derived from its recorded environment variables."""

    stage: str
    partition: str
    region: str
    account: str
    users_table: str
    users_stream: str
    users_by_location_table: str
    device_metadata_table: str
    orders_table: str
    orders_stream: str
    ingest_queue: str
    ingest_dlq: str
    stream_dlq: str
    event_bus: str
    dead_letter_bucket: str

    @classmethod
    def from_environment(cls, stage: str, env: Mapping[str, str]) -> StageArns:
        """Build from a stage's `environment_variables` (ValueError naming the variable that is off).

        Partition, region and account come from USERS_STREAM_ARN; queue URLs must agree on the account.
        """
        partition, region, account = _arn_scope(_need(env, "USERS_STREAM_ARN"), "USERS_STREAM_ARN")
        _arn_scope(_need(env, "ORDERS_STREAM_ARN"), "ORDERS_STREAM_ARN", expect=(partition, region, account))

        def table(variable: str) -> str:
            return f"arn:{partition}:dynamodb:{region}:{account}:table/{_need(env, variable)}"

        def queue(name: str) -> str:
            return f"arn:{partition}:sqs:{region}:{account}:{name}"

        return cls(
            stage=stage, partition=partition, region=region, account=account,
            users_table=table("USERS_TABLE"),
            users_stream=_need(env, "USERS_STREAM_ARN"),
            users_by_location_table=table("USERS_BY_LOCATION_TABLE"),
            device_metadata_table=table("DEVICE_METADATA_TABLE"),
            orders_table=table("ORDERS_TABLE"),
            orders_stream=_need(env, "ORDERS_STREAM_ARN"),
            ingest_queue=queue(_need(env, "INGEST_QUEUE")),
            ingest_dlq=queue(_queue_name(env, "INGEST_DLQ_URL", account)),
            stream_dlq=queue(_queue_name(env, "STREAM_DLQ_URL", account)),
            event_bus=f"arn:{partition}:events:{region}:{account}:event-bus/{_need(env, 'EVENT_BUS_NAME')}",
            dead_letter_bucket=f"arn:{partition}:s3:::{_need(env, 'DEAD_LETTER_BUCKET')}",
        )

    def function_name(self, function: str) -> str:
        """The Lambda function's name as Chalice deploys it (the API handler is just `<app>-<stage>`)."""
        if function == "api_handler":
            return f"{APP_NAME}-{self.stage}"
        return f"{APP_NAME}-{self.stage}-{function}"

    def log_group(self, function: str) -> str:
        """The function's CloudWatch Logs group and its streams."""
        name = self.function_name(function)
        return f"arn:{self.partition}:logs:{self.region}:{self.account}:log-group:/aws/lambda/{name}:*"


# What each function touches, as (statement id, actions, attribute of StageArns or a literal ARN suffix).
# Read by a human as the access map of the system; the policy files are generated from it.
FUNCTION_ACCESS: dict[str, tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...]] = {
    "api_handler": (
        ("UsersTableReadWrite", ("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem",
                                 "dynamodb:DeleteItem"), ("users_table",)),
        ("UsersByLocationQuery", ("dynamodb:Query",), ("users_by_location_table",)),
        ("OrdersTableReadWrite", ("dynamodb:GetItem", "dynamodb:PutItem"), ("orders_table",)),
        ("OrdersStatusIndexQuery", ("dynamodb:Query",), ("orders_table/index/status-index",)),
    ),
    "replicate_users": (
        ("UsersStreamRead", STREAM_READ, ("users_stream",)),
        # Stream order is authoritative: plain BatchWriteItem only (conditional replays run from ops/).
        ("UsersByLocationWrite", ("dynamodb:BatchWriteItem",), ("users_by_location_table",)),
        ("StreamDeadLetters", DEAD_LETTER_QUEUE, ("stream_dlq",)),
        ("LargeDeadLetters", ("s3:PutObject",), ("dead_letter_bucket/replication/*",)),
    ),
    "fanout_users": (
        ("UsersStreamRead", STREAM_READ, ("users_stream",)),
        ("PublishToBus", ("events:PutEvents",), ("event_bus",)),
        ("StreamDeadLetters", DEAD_LETTER_QUEUE, ("stream_dlq",)),
        ("LargeDeadLetters", ("s3:PutObject",), ("dead_letter_bucket/fanout/*",)),
    ),
    "ingest_device_metadata": (
        ("IngestQueueConsume", ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility",
                                "sqs:GetQueueAttributes", "sqs:GetQueueUrl"), ("ingest_queue",)),
        ("DeviceMetadataWrite", ("dynamodb:BatchWriteItem",), ("device_metadata_table",)),
        ("IngestDeadLetters", DEAD_LETTER_QUEUE, ("ingest_dlq",)),
        ("LargeDeadLetters", ("s3:PutObject",), ("dead_letter_bucket/ingest/*",)),
    ),
    "process_orders": (
        ("OrdersStreamRead", STREAM_READ, ("orders_stream",)),
        ("OrdersUpdate", ("dynamodb:UpdateItem",), ("orders_table",)),
        ("StreamDeadLetters", DEAD_LETTER_QUEUE, ("stream_dlq",)),
        ("LargeDeadLetters", ("s3:PutObject",), ("dead_letter_bucket/orders/*",)),
    ),
}

# `python -m ops redrive`: read the letters, replay each through its consumer, delete what was applied.
OPERATOR_ACCESS: dict[str, tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...]] = {
    OPERATOR_REDRIVE: (
        ("ReadAndDeleteDeadLetters", ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility"),
         ("stream_dlq", "ingest_dlq")),
        ("LargeDeadLetters", ("s3:GetObject", "s3:DeleteObject"), ("dead_letter_bucket/*",)),
        # replication letters: the conditional replay path reads the users and guards every target write
        ("ReplayReadsUsers", ("dynamodb:GetItem", "dynamodb:BatchGetItem"), ("users_table",)),
        ("ReplayWritesTarget", ("dynamodb:BatchGetItem", "dynamodb:PutItem", "dynamodb:DeleteItem"),
         ("users_by_location_table",)),
        ("ReplayFanout", ("events:PutEvents",), ("event_bus",)),
        ("ReplayOrders", ("dynamodb:UpdateItem",), ("orders_table",)),
        ("ReplayIngest", ("dynamodb:BatchWriteItem",), ("device_metadata_table",)),
        # Lambda's own failure records name a stream range: re-read it
        ("RereadFailedStreamBatches", ("dynamodb:GetShardIterator", "dynamodb:GetRecords"),
         ("users_stream", "orders_stream")),
    ),
}

STREAM_CONSUMERS = frozenset(
    function for function, grants in FUNCTION_ACCESS.items()
    if any(actions == STREAM_READ for _, actions, _ in grants)
)


def policy_document(function: str, arns: StageArns) -> dict[str, Any]:
    """The IAM policy of `function` in the stage `arns` describes (KeyError for an unknown function)."""
    statements: list[dict[str, Any]] = []
    for sid, actions, resources in FUNCTION_ACCESS[function]:
        statements.append(_statement(sid, actions, [_resolve(arns, r) for r in resources]))
    if function in STREAM_CONSUMERS:
        # ListStreams has no resource type in IAM: it cannot be scoped, so it alone gets "*".
        statements.append(_statement("ListStreamsCannotBeScopedToAResource", ("dynamodb:ListStreams",), ["*"]))
    statements.append(_statement("OwnLogGroup", LOGS, [arns.log_group(function)]))
    return _document(statements, arns)


def operator_policy_document(role: str, arns: StageArns) -> dict[str, Any]:
    """The IAM policy an operator role needs for `role` (e.g. OPERATOR_REDRIVE) in the stage `arns` describes."""
    return _document([_statement(sid, actions, [_resolve(arns, r) for r in resources])
                      for sid, actions, resources in OPERATOR_ACCESS[role]], arns)


def _document(statements: list[dict[str, Any]], arns: StageArns) -> dict[str, Any]:
    for statement in statements:
        if all(action.startswith("s3:") for action in statement["Action"]):
            # Bucket names are global: only the stage's account's bucket, even if that name changes hands.
            statement["Condition"] = {"StringEquals": {"s3:ResourceAccount": arns.account}}
    return {"Version": "2012-10-17", "Statement": statements}


def policy_path(stage: str, function: str) -> str:
    """`iam_policy_file` value for `function` in `stage` (relative to .chalice/, as Chalice resolves it)."""
    return f"{POLICIES_DIR}/{stage}/{function}.json"


def render(document: Mapping[str, Any]) -> str:
    """The file text of a policy document (stable, reviewable diffs)."""
    return json.dumps(document, indent=2) + "\n"


def write_policies(chalice_dir: Path, stage: str, env: Mapping[str, str]) -> dict[str, str]:
    """Write every function's policy file for `stage`; return function → `iam_policy_file` value."""
    arns = StageArns.from_environment(stage, env)
    written: dict[str, str] = {}
    for function in FUNCTION_ACCESS:
        relative = policy_path(stage, function)
        target = chalice_dir / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(render(policy_document(function, arns)))
        written[function] = relative
    for role in OPERATOR_ACCESS:  # not a function: Chalice does not read it; the operator's role does
        (chalice_dir / policy_path(stage, role)).write_text(render(operator_policy_document(role, arns)))
    return written


def _statement(sid: str, actions: tuple[str, ...], resources: list[str]) -> dict[str, Any]:
    return {"Sid": sid, "Effect": "Allow", "Action": sorted(actions),
            "Resource": resources[0] if len(resources) == 1 else resources}


def _resolve(arns: StageArns, reference: str) -> str:
    attribute, _, suffix = reference.partition("/")
    value = getattr(arns, attribute)
    return f"{value}/{suffix}" if suffix else str(value)


def _need(env: Mapping[str, str], variable: str) -> str:
    value = (env.get(variable) or "").strip()
    if not value:
        raise ValueError(f"{variable} is not set")
    return value


def _arn_scope(arn: str, variable: str, expect: tuple[str, str, str] | None = None) -> tuple[str, str, str]:
    parts = arn.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn" or parts[2] != "dynamodb" or "/stream/" not in parts[5]:
        raise ValueError(f"{variable} is not a DynamoDB stream ARN: {arn!r}")
    scope = (parts[1], parts[3], parts[4])
    if not all(scope):
        raise ValueError(f"{variable} lacks partition, region or account: {arn!r}")
    if expect is not None and scope != expect:
        raise ValueError(f"{variable} is in {scope}, not in {expect} like USERS_STREAM_ARN")
    return scope


def _queue_name(env: Mapping[str, str], variable: str, account: str) -> str:
    path = [part for part in urlparse(_need(env, variable)).path.split("/") if part]
    if len(path) != 2:
        raise ValueError(f"{variable} is not a queue URL (…/<account>/<name>): {env[variable]!r}")
    if path[0] != account:
        raise ValueError(f"{variable} is in account {path[0]}, not {account} like USERS_STREAM_ARN")
    return path[1]
