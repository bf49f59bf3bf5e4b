"""No personal data in logs or metrics (SPEC "Observability", issue 18): every consumer and every route runs on
records holding distinctive canary values, on its normal, dead-letter, systemic-fault and refused-DLQ paths, and
no canary appears in any line: the root logger at DEBUG (botocore's loggers included, tracebacks formatted),
stdout (the JSON log lines and the EMF documents), stderr, and the traceback Lambda would log for a raise.

Field *names* may appear (a 400 says `battery` is not allowed); their values never do. The fake AWS itself
(moto's loggers) is not scanned: in production it is AWS, whose logs are not ours.
"""

from __future__ import annotations

import json
import logging
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from decimal import Decimal
from functools import partial
from typing import Any

import boto3
import pytest

from chalicelib import clients
from tests.support.events import insert, modify, remove, sqs_message
from tests.support.faults import FaultyClient, aws_error, raising
from tests.support.resources import StageResources

EMAIL = "canary.e4f1@example.com"
CANARIES = ("Zqxville-7f3a", "ZQ-91c2", "98765-4321", "canary.e4f1", "canary-dev-5b1e", "canary-loc-9d0c",
            "canary-x-33aa", "canary-ord-c4d2", "canary-sku-77e1", "1234.5678")
USER = {"email": EMAIL, "state": "ZQ-91c2", "city": "Zqxville-7f3a", "zipcode": "98765-4321", "active": True}
STORED_USER = {**USER, "battery": "canary-x-33aa"}  # an attribute the API never wrote: images carry it anyway
MOVED_USER = {**STORED_USER, "city": "Zqxville-7f3a-b"}
ORDER_ITEM = {"name": "canary-ord-c4d2", "sku": "canary-sku-77e1", "quantity": 1, "unit_price": 1234.5678}
SIGHTING = {"user_id": EMAIL, "device": "canary-dev-5b1e", "location": "canary-loc-9d0c", "battery": "canary-x-33aa"}
JSON = {"Content-Type": "application/json"}
NOT_SCANNED = ("moto", "werkzeug")  # the fake AWS

totals: Counter[str] = Counter()


class Lines(logging.Handler):
    """Every record that reaches the root logger, formatted with its traceback."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if not record.name.startswith(NOT_SCANNED):
            self.lines.append(self.format(record) + " " + json.dumps(record.__dict__, default=str))


class Scan:
    """What one scenario printed and logged, and the check that no canary is in any of it."""

    def __init__(self, capsys: pytest.CaptureFixture[str], handler: Lines):
        self._capsys = capsys
        self._handler = handler
        self.raised: list[str] = []

    def begin(self) -> None:
        """Scan from here on (what the test arranged before is not the product's)."""
        self._handler.lines.clear()
        self._capsys.readouterr()

    def run(self, call: Callable[[], Any]) -> Any:
        """Call `call`; a raise is kept as the traceback Lambda would log (and not re-raised)."""
        try:
            return call()
        except Exception as error:
            self.raised.append("".join(traceback.format_exception(error)))
            return None

    def assert_clean(self, scenario: str, *, consumer: bool = False) -> None:
        captured = self._capsys.readouterr()
        stdout = [line for line in captured.out.splitlines() if line.strip()]
        documents = [line for line in stdout if '"_aws"' in line]
        lines = self._handler.lines + [line for line in stdout if line not in documents] + [
            line for line in captured.err.splitlines() if line.strip()] + self.raised
        leaks = [(canary, line[:300]) for line in lines + documents for canary in CANARIES if canary in line]
        assert not leaks, f"{scenario}: personal data in the logs: {leaks}"
        assert lines or documents, f"{scenario}: nothing was logged: the scan proves nothing"
        if consumer:  # the paths that name records and errors were taken
            assert len(documents) == 1, f"{scenario}: one EMF document per invocation"
            assert any("record dead-lettered" in line or "systemic fault" in line for line in lines), (
                f"{scenario}: no letter and no fault was logged: the scan proves little")
        totals["scenarios"] += 1
        totals["log lines"] += len(lines)
        totals["EMF documents"] += len(documents)


@pytest.fixture
def scan(capsys: pytest.CaptureFixture[str]) -> Iterator[Scan]:
    handler = Lines()
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    capsys.readouterr()
    try:
        yield Scan(capsys, handler)
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


@pytest.fixture(scope="module", autouse=True)
def report() -> Iterator[None]:
    yield
    print(f"\nlog privacy: {dict(totals)}")  # the counts the closing note asks for (pytest -s)


@pytest.fixture(autouse=True)
def instant_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    from chalicelib import backoff

    monkeypatch.setattr(backoff, "Backoff", partial(backoff.Backoff, sleep=lambda _: None))


def fault(service: str, *methods: str, code: str = "AccessDeniedException", status: int = 400) -> None:
    """The app's `service` client answers `code` to `methods` (botocore's own parser builds the error)."""
    faults = {method: raising(aws_error(service, "".join(part.title() for part in method.split("_")), code,
                                        status=status)) for method in methods}
    clients.override(service, FaultyClient(boto3.client(service), **faults))


def refuse_dead_letters() -> None:
    fault("sqs", "send_message", "send_message_batch", code="AccessDenied", status=403)


# --- the consumers ------------------------------------------------------------------------------

def unreadable(record: dict[str, Any]) -> dict[str, Any]:
    """`record` with an image no deserializer reads: each stream consumer dead-letters it, naming the error."""
    broken = json.loads(json.dumps(record))
    broken["dynamodb"]["NewImage"]["city"] = {"X": "Zqxville-7f3a", "S": "98765-4321"}
    return broken


def user_records() -> list[dict[str, Any]]:
    odd = insert({**STORED_USER, "email": "canary.e4f1@example.org", "state": {"canary": "ZQ-91c2"}})  # not a text
    return [insert(STORED_USER), modify(STORED_USER, MOVED_USER), remove(MOVED_USER), odd,
            unreadable(insert(STORED_USER))]


def order_records(aws: StageResources, run: str) -> list[dict[str, Any]]:
    table = boto3.resource("dynamodb").Table(aws["OrdersTable"])
    item = {**ORDER_ITEM, "unit_price": Decimal("1234.5678"), "quantity": Decimal(1)}
    good = {"id": f"order-1 {run}", "status": "PENDING", "name": "canary-ord-c4d2", "items": [item], "email": EMAIL}
    bad = {**good, "id": f"order-2 {run}", "items": [{**item, "unit_price": "canary-sku-77e1"}]}  # becomes FAILED
    records = []
    for order in (good, bad):
        table.put_item(Item=order)
        records.append(insert(order, key_names=("id",), table=aws["OrdersTable"]))
    records.append({**insert(good, key_names=("id",), table=aws["OrdersTable"]), "dynamodb": "canary-ord-c4d2"})
    records.append(unreadable(insert({**good, "city": "x"}, key_names=("id",), table=aws["OrdersTable"])))
    return records


def ingest_records() -> list[dict[str, Any]]:
    return [sqs_message(SIGHTING),
            sqs_message({**SIGHTING, "device": "canary-dev-5b1e" * 40}),  # too long
            sqs_message({**SIGHTING, "location": ["canary-loc-9d0c"]}),  # not a text
            sqs_message("canary-x-33aa: not JSON"),
            sqs_message({k: v for k, v in SIGHTING.items() if k != "device"})]


CONSUMERS = {
    "replication": ("replicate_users", "dynamodb", ("batch_write_item",)),
    "fanout": ("fanout_users", "events", ("put_events",)),
    "orders": ("process_orders", "dynamodb", ("update_item",)),
    "ingest": ("ingest_device_metadata", "dynamodb", ("batch_write_item",)),
}
PATHS = ("normal and dead letters", "systemic AccessDenied", "dead-letter queue refuses",
         "systemic fault and dead-letter queue refuses")


@pytest.mark.parametrize("consumer", CONSUMERS)
def test_a_consumer_logs_no_personal_data(chalice_client: Any, aws: StageResources, scan: Scan, consumer: str) -> None:
    function, service, methods = CONSUMERS[consumer]
    for path in PATHS:  # one stage for the four paths: deploying it is most of a scenario's time
        clients.reset()
        records = (ingest_records() if consumer == "ingest" else order_records(aws, path) if consumer == "orders"
                   else user_records())
        if "systemic" in path:
            fault(service, *methods)
        if "refuses" in path:
            refuse_dead_letters()
        scan.begin()
        scan.run(partial(chalice_client.lambda_.invoke, function, {"Records": records}))
        scan.assert_clean(f"{consumer}, {path}", consumer=True)


# --- the routes ---------------------------------------------------------------------------------

def users_routes(client: Any) -> None:
    http = client.http
    body = json.dumps(USER)
    http.post("/users", headers=JSON, body=body)
    http.post("/users", headers=JSON, body=body)  # 409: exists
    http.post("/users", headers=JSON, body=json.dumps({**USER, "email": "canary.e4f1@", "battery": "canary-x-33aa"}))
    http.post("/users", headers=JSON, body=json.dumps({**USER, "zipcode": ["98765-4321"]}))
    http.post("/users", headers=JSON, body="{canary-x-33aa: Zqxville-7f3a")
    http.get(f"/users/{EMAIL}")
    http.get("/users/canary.e4f1@nowhere.example")  # 404
    http.get("/users?state=ZQ-91c2&city=Zqxville-7f3a")
    http.get("/users?state=ZQ-91c2&next_token=canary-x-33aa")  # a token that is not one
    http.patch(f"/users/{EMAIL}", headers=JSON, body=json.dumps({"city": "Zqxville-7f3a-c", "zipcode": "98765-4321"}))
    http.patch(f"/users/{EMAIL}", headers=JSON, body=json.dumps({"battery": "canary-x-33aa", "state": 98765}))
    http.delete(f"/users/{EMAIL}")
    http.delete(f"/users/{EMAIL}")  # 404


def orders_routes(client: Any) -> None:
    http = client.http
    created = http.post("/orders", headers=JSON, body=json.dumps({"name": "canary-ord-c4d2", "items": [
        {k: v for k, v in ORDER_ITEM.items() if k != "name"}]}))
    http.post("/orders", headers=JSON, body=json.dumps({"name": "canary-ord-c4d2", "items": [ORDER_ITEM]}))
    http.post("/orders", headers=JSON, body=json.dumps({"name": "canary-ord-c4d2", "items": [
        {"sku": "canary-sku-77e1", "quantity": "1234.5678", "unit_price": "canary-x-33aa"}]}))
    http.post("/orders", headers=JSON, body="canary-ord-c4d2")
    order_id = (created.json_body or {}).get("id", "missing")
    http.get(f"/orders/{order_id}")
    http.get("/orders/canary-ord-c4d2")
    http.get("/orders?status=PENDING")
    http.get("/orders?status=canary-ord-c4d2")


@pytest.mark.parametrize("routes", (users_routes, orders_routes), ids=("users", "orders"))
def test_a_route_logs_no_personal_data(chalice_client: Any, aws: StageResources, scan: Scan,
                                       routes: Callable[[Any], None]) -> None:
    storage = ("put_item", "get_item", "query", "update_item", "delete_item")
    for path in ("answered", "storage denies access", "storage fails"):
        clients.reset()
        if path == "storage denies access":
            fault("dynamodb", *storage)
        if path == "storage fails":  # retried, then a 500 whose traceback Chalice logs
            fault("dynamodb", *storage, code="InternalServerError", status=500)
        scan.begin()
        scan.run(partial(routes, chalice_client))
        scan.assert_clean(f"{routes.__name__}, {path}")
