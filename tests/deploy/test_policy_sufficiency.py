"""The least-privilege policies are also enough: each function's handler runs its paths in moto (success,
dead letters, retries), every AWS request it makes is recorded, and each must be allowed by the policy
`ops provision` generates for that stage. A call added to the code but not to ops/policies.py fails here,
not in production with AccessDenied."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any
from urllib.parse import urlparse

import boto3
import pytest

from chalicelib import clients
from chalicelib.backoff import Backoff, no_sleep
from ops import policies
from tests.support.events import insert, remove, sqs_event, sqs_message, stream_event, stream_record
from tests.support.faults import FaultyClient, client_error
from tests.support.resources import StageResources

JSON = {"Content-Type": "application/json"}
USER = {"email": "ada@example.com", "state": "NY", "city": "Brooklyn", "zipcode": "11201", "active": True}

# Batch operations are authorized as their single-entry action.
IAM_ACTION = {"SendMessageBatch": "SendMessage", "DeleteMessageBatch": "DeleteMessage",
              "ChangeMessageVisibilityBatch": "ChangeMessageVisibility"}
SERVICE_PREFIX = {"dynamodb": "dynamodb", "sqs": "sqs", "events": "events"}


class Recorder:
    """Every request made through the app's clients (chalicelib.clients), as (IAM action, resource ARN)."""

    def __init__(self, arns: policies.StageArns):
        self._arns = arns
        self.requests: list[tuple[str, str]] = []

    def attach(self, client: Any) -> None:
        client.meta.events.register("provide-client-params.*.*", self._record)

    def _record(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        service = model.service_model.endpoint_prefix
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
        buses = {entry.get("EventBusName", "default") for entry in params.get("Entries", [])}
        return [bus if bus.startswith("arn:") else f"arn:{a.partition}:events:{a.region}:{a.account}:event-bus/{bus}"
                for bus in sorted(buses)]

    def take(self) -> list[tuple[str, str]]:
        taken, self.requests = self.requests, []
        return taken


def denied(document: dict[str, Any], requests: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The requests no Allow statement of `document` covers (our policies use no patterns but `*`)."""
    def allowed(action: str, resource: str) -> bool:
        for statement in document["Statement"]:
            actions = [statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"]
            resources = [statement["Resource"]] if isinstance(statement["Resource"], str) else statement["Resource"]
            if action in actions and (resource in resources or "*" in resources):
                return True
        return False

    return sorted({r for r in requests if not allowed(*r)})


class _NoSleepBackoff(Backoff):
    """The app's retries, without real sleeping (tests never sleep)."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **{**kwargs, "sleep": no_sleep})


@pytest.fixture(autouse=True)
def no_real_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    for name, module in list(sys.modules.items()):
        if (name == "chalicelib" or name.startswith("chalicelib.")) and getattr(module, "Backoff", None) is Backoff:
            monkeypatch.setattr(module, "Backoff", _NoSleepBackoff)


@pytest.fixture
def recorded(aws: StageResources, chalice_client: Any) -> Iterator[tuple[Recorder, Callable[[str], Any]]]:
    """A recorder on the app's clients, and the policy of a function for this stage."""
    arns = policies.StageArns.from_environment("test", aws.env())
    recorder = Recorder(arns)
    for service in SERVICE_PREFIX:
        recorder.attach(clients.client(service))

    def check(function: str) -> set[str]:
        """Assert the requests since the last check are allowed; return their actions."""
        requests = recorder.take()
        assert requests, f"{function} made no AWS request: the scenario did not reach its adapters"
        assert denied(policies.policy_document(function, arns), requests) == [], function
        return {action for action, _ in requests}

    yield recorder, check


def test_api_handler_needs_nothing_beyond_its_policy(recorded: Any, chalice_client: Any) -> None:
    _, check = recorded
    http = chalice_client.http
    assert http.post("/users", headers=JSON, body=json.dumps(USER)).status_code == 201
    assert http.post("/users", headers=JSON, body=json.dumps(USER)).status_code == 409
    assert http.get("/users/ada@example.com").status_code == 200
    assert http.patch("/users/ada@example.com", headers=JSON, body=json.dumps({"city": "Queens"})).status_code == 200
    assert http.get("/users?state=NY&city=Queens").status_code == 200
    assert http.delete("/users/ada@example.com").status_code == 204
    assert http.delete("/users/ada@example.com").status_code == 404
    order = http.post("/orders", headers=JSON, body=json.dumps({"name": "Ada", "items": []}))
    assert order.status_code == 202
    assert http.get(f"/orders/{order.json_body['id']}").status_code == 200
    assert http.get("/orders?status=PENDING").status_code == 200
    assert check("api_handler") == {"dynamodb:PutItem", "dynamodb:GetItem", "dynamodb:UpdateItem",
                                    "dynamodb:DeleteItem", "dynamodb:Query"}


def test_replicate_users_needs_nothing_beyond_its_policy(recorded: Any, chalice_client: Any) -> None:
    _, check = recorded
    moved = {**USER, "email": "bob@example.com"}
    event = stream_event(insert(USER), insert(moved), remove(moved),
                         stream_record("REMOVE", {"email": "eve@example.com"}))  # no image: a dead letter
    chalice_client.lambda_.invoke("replicate_users", event)
    assert check("replicate_users") == {"dynamodb:BatchWriteItem", "sqs:SendMessage"}


def test_fanout_users_needs_nothing_beyond_its_policy(recorded: Any, chalice_client: Any,
                                                     aws: StageResources) -> None:
    recorder, check = recorded
    chalice_client.lambda_.invoke("fanout_users", stream_event(insert(USER)))
    assert check("fanout_users") == {"events:PutEvents"}

    # AND when EventBridge keeps refusing, the record goes to the stream DLQ
    refusing = FaultyClient(clients.client("events"), put_events=lambda real, **kw: (
        real(**kw), {"FailedEntryCount": len(kw["Entries"]),
                     "Entries": [{"ErrorCode": "InternalFailure", "ErrorMessage": "x"} for _ in kw["Entries"]]})[1])
    clients.override("events", refusing)
    chalice_client.lambda_.invoke("fanout_users", stream_event(insert(USER)))
    sqs = boto3.client("sqs")
    assert sqs.receive_message(QueueUrl=aws["StreamDlqUrl"]).get("Messages"), "no dead letter was sent"
    assert check("fanout_users") == {"events:PutEvents", "sqs:SendMessage"}


def test_ingest_device_metadata_needs_nothing_beyond_its_policy(recorded: Any, chalice_client: Any,
                                                               aws: StageResources) -> None:
    _, check = recorded
    sqs = boto3.client("sqs")
    queue_arn = sqs.get_queue_attributes(QueueUrl=sqs.get_queue_url(QueueName=aws.env()["INGEST_QUEUE"])["QueueUrl"],
                                         AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    body = {"user_id": "u-1", "device": "pixel", "location": "Lisbon"}
    chalice_client.lambda_.invoke("ingest_device_metadata", sqs_event(
        sqs_message(body, queue_arn=queue_arn), sqs_message("not json", queue_arn=queue_arn)))
    assert check("ingest_device_metadata") == {"dynamodb:BatchWriteItem", "sqs:SendMessage"}

    # AND when a write stays throttled, the finished messages are deleted from the queue (GetQueueUrl, Delete)
    throttled = FaultyClient(clients.client("dynamodb"), batch_write_item=lambda real, **kw: (_ for _ in ()).throw(
        client_error("ProvisionedThroughputExceededException", "slow down", "BatchWriteItem")))
    clients.override("dynamodb", throttled)
    sqs.send_message(QueueUrl=aws["IngestDlqUrl"].replace("-dlq", ""), MessageBody="not json")
    received = sqs.receive_message(QueueUrl=aws["IngestDlqUrl"].replace("-dlq", ""))["Messages"][0]
    with pytest.raises(Exception, match="remain in the queue for retry"):
        chalice_client.lambda_.invoke("ingest_device_metadata", sqs_event(
            sqs_message(body, queue_arn=queue_arn),
            sqs_message("not json", queue_arn=queue_arn, receipt_handle=received["ReceiptHandle"])))
    assert {"sqs:GetQueueUrl", "sqs:DeleteMessage"} <= check("ingest_device_metadata")


def test_process_orders_needs_nothing_beyond_its_policy(recorded: Any, chalice_client: Any) -> None:
    recorder, check = recorded
    order = chalice_client.http.post("/orders", headers=JSON, body=json.dumps(
        {"name": "Ada", "items": [{"sku": "A", "quantity": 2, "unit_price": 1.5}]})).json_body
    recorder.take()  # the API's requests are the API's
    stored = {**order, "items": [{"sku": "A", "quantity": 2, "unit_price": Decimal("1.5")}]}
    chalice_client.lambda_.invoke("process_orders", stream_event(
        insert(stored, key_names=("id",), table="stream-pipeline-test-orders")))
    assert check("process_orders") == {"dynamodb:UpdateItem"}


def test_every_function_of_app_py_has_a_scenario_here(app_shape: Any) -> None:
    # A function added to app.py needs its own scenario above, or its policy is only checked for narrowness.
    suffix = "_needs_nothing_beyond_its_policy"
    missing = [fn for fn in sorted(app_shape.functions) if f"test_{fn}{suffix}" not in globals()]
    assert missing == []


# --- callers: the users-reader policy the README shows ------------------------------------------

def readme_caller_policy() -> dict[str, Any]:
    from tests.deploy.conftest import ROOT

    text = (ROOT / "README.md").read_text()
    start = text.index('```json\n{"Effect": "Allow", "Action": "execute-api:Invoke"') + len("```json\n")
    return json.loads(text[start:text.index("```", start)])


def test_the_readme_users_reader_may_invoke_every_users_read_route_and_nothing_else(app_shape: Any) -> None:
    from fnmatch import fnmatchcase

    statement = readme_caller_policy()
    api = statement["Resource"][0].split("/", 1)[0]  # arn:aws:execute-api:<region>:<account>:<api id>

    def allowed(method: str, path: str) -> bool:
        # A request's ARN names the path as called: `{email}` is a real address there.
        called = path.replace("{email}", "ada@example.com").replace("{id}", "3f2c")
        return any(fnmatchcase(f"{api}/api/{method}{called}", pattern) for pattern in statement["Resource"])

    users_routes = {(path, method) for path, method in app_shape.routes if path.startswith("/users")}
    assert {route for route in users_routes if allowed(route[1], route[0])} == {
        route for route in users_routes if route[1] == "GET"}
    assert not allowed("GET", "/orders")
