"""Recording the AWS requests made through the app's clients as IAM (action, resource) pairs, and checking
them against a policy document: the least-privilege policies must also be enough."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

from ops import policies

# Batch operations are authorized as their single-entry action.
IAM_ACTION = {"SendMessageBatch": "SendMessage", "DeleteMessageBatch": "DeleteMessage",
              "ChangeMessageVisibilityBatch": "ChangeMessageVisibility"}
# boto3 service name → IAM action prefix (DynamoDB Streams' actions are dynamodb:*).
SERVICE_PREFIX = {"dynamodb": "dynamodb", "sqs": "sqs", "events": "events", "s3": "s3",
                  "dynamodbstreams": "dynamodb"}
_BY_ENDPOINT = {"dynamodb": "dynamodb", "sqs": "sqs", "events": "events", "s3": "s3",
                "streams.dynamodb": "dynamodbstreams"}


class Recorder:
    """Every request made through the app's clients (chalicelib.clients), as (IAM action, resource ARN)."""

    def __init__(self, arns: policies.StageArns):
        self._arns = arns
        self.requests: list[tuple[str, str]] = []
        self._stream = "?"  # GetRecords names a shard iterator: the stream of the last GetShardIterator

    def attach(self, client: Any) -> None:
        client.meta.events.register("provide-client-params.*.*", self._record)

    def _record(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        service = _BY_ENDPOINT.get(model.service_model.endpoint_prefix, model.service_model.endpoint_prefix)
        if service not in SERVICE_PREFIX:
            self.requests.append((f"{service}:{model.name}", "?"))
            return
        action = f"{SERVICE_PREFIX[service]}:{IAM_ACTION.get(model.name, model.name)}"
        for resource in self._resources(service, params):
            self.requests.append((action, resource))

    def _resources(self, service: str, params: dict[str, Any]) -> list[str]:
        a = self._arns
        if service == "dynamodb":
            tables = list(params.get("RequestItems", {})) or [params["TableName"]]
            found = [f"arn:{a.partition}:dynamodb:{a.region}:{a.account}:table/{t}" for t in tables]
            return [f"{arn}/index/{params['IndexName']}" for arn in found] if "IndexName" in params else found
        if service == "sqs":
            if "QueueUrl" in params:
                account, name = [p for p in urlparse(params["QueueUrl"]).path.split("/") if p]
            else:
                account, name = params.get("QueueOwnerAWSAccountId", a.account), params["QueueName"]
            return [f"arn:{a.partition}:sqs:{a.region}:{account}:{name}"]
        if service == "s3":
            return [f"arn:{a.partition}:s3:::{params['Bucket']}/{params['Key']}"]
        if service == "dynamodbstreams":
            self._stream = params.get("StreamArn", self._stream)
            return [self._stream]
        buses = {entry.get("EventBusName", "default") for entry in params.get("Entries", [])}
        return [bus if bus.startswith("arn:") else f"arn:{a.partition}:events:{a.region}:{a.account}:event-bus/{bus}"
                for bus in sorted(buses)]

    def take(self) -> list[tuple[str, str]]:
        taken, self.requests = self.requests, []
        return taken


def denied(document: dict[str, Any], requests: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The requests no Allow statement of `document` covers."""
    def allowed(action: str, resource: str) -> bool:
        for statement in document["Statement"]:
            actions = [statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"]
            resources = [statement["Resource"]] if isinstance(statement["Resource"], str) else statement["Resource"]
            # An object ARN ending in `/*` covers its prefix (the only pattern our policies use besides `*`).
            if action in actions and any(r in ("*", resource) or (r.endswith("/*") and resource.startswith(r[:-1]))
                                         for r in resources):
                return True
        return False

    return sorted({r for r in requests if not allowed(*r)})
