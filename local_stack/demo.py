"""`python -m local_stack.demo` (`make demo`): the classic walkthrough against a running local stack.

Five users (Brooklyn, Staten Island, Cincinnati, Cleveland, Los Angeles) are created over HTTP, one moves,
one is deleted, a device message goes to the ingest queue and an order is placed; then the target table,
the fan-out events the example subscriber received, the device table and the order are printed, and last
the consumers' metrics of the past hour as `python -m ops status` shows them (from the emulator's CloudWatch).
Each run uses its own e-mail suffix (time and random), so running it again, even within the same second, works
and shows only that run. A stack that is down, or stops answering mid-run, is one line, not a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError
from rich.console import Console
from rich.table import Table

from chalicelib.clock import utc_now
from chalicelib.config import DEFAULT_METRICS_NAMESPACE
from local_stack.emulator import LOCAL_AWS_ENV
from tooling.consumer_metrics import ConsumerWindow, consumers_table, read_windows
from tooling.infrastructure import stack_name
from tooling.stage import stage_variables

USERS = [  # (name, state, city, zipcode)
    ("ana", "NY", "Brooklyn", "11201"),
    ("ben", "NY", "Staten Island", "10301"),
    ("cleo", "OH", "Cincinnati", "45202"),
    ("dev", "OH", "Cleveland", "44113"),
    ("eli", "CA", "Los Angeles", "90012"),
]
MOVE = ("dev", {"city": "Columbus", "zipcode": "43215"})
DELETE = "eli"
EXPECTED_EVENTS = len(USERS) + 2  # five INSERTs, one MODIFY, one REMOVE
STALE_EVENT_SECONDS = 60  # another run's events older than this are leftovers: deleted


class StackUnavailable(Exception):
    """The local stack did not answer, or answered what no stack would: said in one line."""


class Api:
    """JSON over HTTP to the local API."""

    def __init__(self, base: str):
        self.base = base.rstrip("/")

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """(status, parsed JSON body or None)."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                status, text = response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            status, text = error.code, error.read().decode()
        except OSError as error:  # refused, reset, timed out: URLError and socket errors are all OSErrors
            raise StackUnavailable(f"the API at {self.base} did not answer {method} {path} "
                                   f"({getattr(error, 'reason', None) or error})") from None
        try:
            return status, json.loads(text) if text else None
        except ValueError:
            raise StackUnavailable(f"{self.base} answered {method} {path} with something other than JSON "
                                   f"(HTTP {status}): is it the local stack's API?") from None


def wait_for[T](probe: Callable[[], T | None], timeout: float, interval: float = 0.1) -> T | None:
    """`probe()` until it returns something other than None, or None after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found is not None or time.monotonic() > deadline:
            return found
        time.sleep(interval)


def run_id(now: Callable[[], time.struct_time] = time.localtime) -> str:
    """This run's e-mail suffix: the time, readable, and random bits, so two runs in one second differ."""
    return f"{time.strftime('%H%M%S', now())}-{secrets.token_hex(3)}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local_stack.demo", description=__doc__)
    parser.add_argument("--api", default="http://127.0.0.1:8000", help="the local stack's API (default %(default)s)")
    parser.add_argument("--emulator", default="http://127.0.0.1:4566", help="its emulator (default %(default)s)")
    parser.add_argument("--stage", default="dev")
    parser.add_argument("--timeout", type=float, default=15.0, help="seconds to wait for each flow")
    args = parser.parse_args(argv)
    console = Console()
    if not console.is_terminal:  # piped or in CI: rich would assume 80 columns and cut e-mails and times short
        console = Console(width=160)
    os.environ.update(LOCAL_AWS_ENV)
    os.environ["AWS_ENDPOINT_URL"] = args.emulator
    os.environ.pop("AWS_PROFILE", None)
    api = Api(args.api)
    try:
        outputs = stack_outputs(args.stage)
        api.call("GET", "/orders?status=PENDING&limit=1")  # the API answers too, before anything is created
    except (StackUnavailable, BotoCoreError, ClientError) as error:
        console.print(f"[red]✗ No local stack answering (emulator {args.emulator}, API {args.api}): {error}. "
                      "Start one with `make run` (in another terminal).[/red]", soft_wrap=True)
        return 2
    run = run_id()
    emails = {name: f"{name}.{run}@example.com" for name, *_ in USERS}
    console.rule(f"demo run {run}")
    try:
        ok, order_id = walkthrough(api, outputs, emails, console)
        ok &= show_results(api, outputs, emails, order_id, console, args.timeout)
        show_consumer_metrics(stage_variables(args.stage).get("METRICS_NAMESPACE") or DEFAULT_METRICS_NAMESPACE,
                              console)
    except (StackUnavailable, BotoCoreError, ClientError) as error:
        console.print(f"[red]✗ The local stack stopped answering mid-run: {error}. Is `make run` still running?[/red]",
                      soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        console.print("[yellow]demo interrupted[/yellow]")
        return 130
    return 0 if ok else 1


def show_consumer_metrics(namespace: str, console: Console, settle: float = 3.0) -> None:
    """The consumers' last hour, once every consumer's metrics are in (each invocation forwards its own as it ends)."""
    cloudwatch = boto3.client("cloudwatch")

    def every_consumer() -> list[ConsumerWindow] | None:
        windows, _ = read_windows(cloudwatch, namespace, utc_now())
        return windows if all(window.invoked for window in windows) else None

    windows = wait_for(every_consumer, settle, interval=0.5) or read_windows(cloudwatch, namespace, utc_now())[0]
    console.print(consumers_table(windows))


def stack_outputs(stage: str) -> dict[str, str]:
    """The stage stack's outputs (table names, queue URLs) from the emulator's CloudFormation."""
    stack = boto3.client("cloudformation").describe_stacks(StackName=stack_name(stage))["Stacks"][0]
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def walkthrough(api: Api, outputs: dict[str, str], emails: dict[str, str], console: Console) -> tuple[bool, str]:
    """Create, move, delete, send a device message, place an order; print each answer. → (ok, order id)"""
    ok = True
    for name, state, city, zipcode in USERS:
        status, _ = api.call("POST", "/users", {"email": emails[name], "state": state, "city": city,
                                                "zipcode": zipcode})
        ok &= _step(console, f"POST /users {emails[name]} ({city}, {state})", status, 201)
    who, change = MOVE
    status, _ = api.call("PATCH", f"/users/{emails[who]}", change)
    ok &= _step(console, f"PATCH /users/{emails[who]} → {change['city']}", status, 200)
    status, _ = api.call("DELETE", f"/users/{emails[DELETE]}")
    ok &= _step(console, f"DELETE /users/{emails[DELETE]}", status, 204)

    sqs = boto3.client("sqs")
    queue_url = sqs.get_queue_url(QueueName=outputs["IngestQueueName"])["QueueUrl"]
    sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(
        {"user_id": emails["ana"], "device": "iPhone 15", "location": "Brooklyn, NY"}))
    console.print(f"  [green]✓[/green] device message sent to {outputs['IngestQueueName']}")

    status, order = api.call("POST", "/orders", {"name": f"demo order {emails['ana']}", "items": [
        {"sku": "BAGEL", "quantity": 3, "unit_price": 1.25}, {"sku": "COFFEE", "quantity": 1, "unit_price": 3.5}]})
    ok &= _step(console, "POST /orders", status, 202)
    return ok, order["id"] if isinstance(order, dict) and "id" in order else ""


def show_results(api: Api, outputs: dict[str, str], emails: dict[str, str], order_id: str, console: Console,
                 timeout: float) -> bool:
    """Wait for each flow to settle and print it as a table; False if any did not."""
    ok = True
    ours = set(emails.values())
    expected = {emails[n] for n, *_ in USERS if n != DELETE}

    def target_rows() -> list[dict[str, Any]] | None:
        rows = [item for state in sorted({s for _, s, *_ in USERS})
                for item in api.call("GET", f"/users?state={state}&limit=100")[1]["items"] if item["email"] in ours]
        moved = [r for r in rows if r["email"] == emails[MOVE[0]]]
        done = {r["email"] for r in rows} == expected and moved and moved[0]["city"] == MOVE[1]["city"]
        return rows if done else None

    rows = wait_for(target_rows, timeout)
    ok &= _found(console, rows, "the target table did not reach the expected state")
    table = Table(title="USERS_BY_LOCATION_TABLE (this run): GET /users?state=…")
    for column in ("state", "city", "email", "active"):
        table.add_column(column)
    for row in rows or []:
        table.add_row(row["state"], row["city"], row["email"], str(row["active"]))
    console.print(table)

    events = collect_events(outputs["SubscriberQueueUrl"], ours, timeout)
    ok &= _found(console, events if len(events) >= EXPECTED_EVENTS else None,
                 f"{len(events)} of {EXPECTED_EVENTS} fan-out events reached the subscriber")
    subscriber = outputs["SubscriberQueueUrl"].rsplit("/", 1)[-1]
    table = Table(title=f"Fan-out events the example subscriber received (queue {subscriber}), in stream order")
    for column in ("detail-type", "user", "where", "changed attributes"):
        table.add_column(column)
    for event in events:
        detail = event["detail"]
        image = detail.get("newImage") or detail.get("oldImage") or {}
        where = f"{image.get('city')}, {image.get('state')}"
        if detail.get("eventName") == "MODIFY" and detail.get("oldImage"):
            where = f"{detail['oldImage'].get('city')} → {image.get('city')}, {image.get('state')}"
        table.add_row(event["detail-type"], detail["keys"].get("email", ""), where,
                      ", ".join(detail.get("changedAttributes", [])))
    console.print(table)

    dynamodb = boto3.client("dynamodb")

    def devices() -> list[dict[str, Any]] | None:
        items = dynamodb.query(TableName=outputs["DeviceMetadataTable"], KeyConditionExpression="user_id = :u",
                               ExpressionAttributeValues={":u": {"S": emails["ana"]}})["Items"]
        return items or None

    items = wait_for(devices, timeout)
    ok &= _found(console, items, "the device message was not stored")
    table = Table(title="DEVICE_METADATA_TABLE (this run)")
    for column in ("user_id", "seen_at", "device", "location"):
        table.add_column(column)
    for item in items or []:
        table.add_row(*(item[c]["S"] for c in ("user_id", "seen_at", "device", "location")))
    console.print(table)

    def settled_order() -> dict[str, Any] | None:
        status, order = api.call("GET", f"/orders/{order_id}")
        return order if status == 200 and order.get("status") != "PENDING" else None

    order = wait_for(settled_order, timeout) if order_id else None
    ok &= _found(console, order, "the order was not processed")
    table = Table(title="Order: GET /orders/{id}")
    for column in ("id", "name", "status", "total", "processed_at"):
        table.add_column(column)
    if order:
        table.add_row(order["id"], order["name"], order["status"], str(order.get("total", "")),
                      order.get("processed_at") or order.get("failure_reason", ""))
    console.print(table)
    return ok


def collect_events(queue_url: str, emails: set[str], timeout: float) -> list[dict[str, Any]]:
    """Read the subscriber queue until this run's events are in, oldest first.

    This run's events are deleted as they are read. Another run's events are left to it (hidden for a moment,
    so the next receive reaches further into the queue) while they are fresh, so two demos at once both
    finish; leftovers older than STALE_EVENT_SECONDS are deleted, so the queue does not grow run after run.
    """
    sqs = boto3.client("sqs")
    found: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while len(found) < EXPECTED_EVENTS and time.monotonic() < deadline:
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0,
                                       AttributeNames=["SentTimestamp"]).get("Messages", [])
        before = len(found)
        for message in messages:
            event = _event_of(message, emails)
            age = time.time() - int(message.get("Attributes", {}).get("SentTimestamp", "0")) / 1000
            if event is not None:
                found.append(event)
            if event is not None or age > STALE_EVENT_SECONDS:
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
            else:
                sqs.change_message_visibility(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"],
                                              VisibilityTimeout=2)
        if len(found) == before:
            time.sleep(0.1)
    return sorted(found, key=lambda e: int(e["detail"].get("sequenceNumber", "0")))


def _event_of(message: dict[str, Any], emails: set[str]) -> dict[str, Any] | None:
    """The fan-out event a subscriber message holds, if it is about one of `emails`."""
    try:
        event = json.loads(message["Body"])
    except ValueError:
        return None
    keys = event.get("detail", {}).get("keys", {}) if isinstance(event, dict) else {}
    return event if isinstance(keys, dict) and keys.get("email") in emails else None


def _step(console: Console, what: str, status: int, expected: int) -> bool:
    mark = "[green]✓[/green]" if status == expected else "[red]✗[/red]"
    console.print(f"  {mark} {what}: {status}")
    return status == expected


def _found(console: Console, value: Any, problem: str) -> bool:
    if value:
        return True
    console.print(f"[red]✗ {problem}[/red]")
    return False


if __name__ == "__main__":
    sys.exit(main())
