"""End to end: the local stack in a subprocess, driven over HTTP and boto3 only."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import uuid

import pytest

from tests.e2e.conftest import ROOT, LocalStackProcess, eventually, free_port

pytestmark = pytest.mark.e2e

FLOW_TIMEOUT = 15.0  # generous for flows with no stated bound (slow shared CI)


def new_email() -> str:
    return f"e2e-{uuid.uuid4().hex[:10]}@example.com"


def by_state(stack: LocalStackProcess, state: str) -> list[dict]:
    status, body = stack.http("GET", f"/users?state={state}&limit=100")
    assert status == 200, body
    return body["items"]


def test_a_posted_user_is_queryable_by_state_within_two_seconds(stack):
    # GIVEN a new user  WHEN it is POSTed
    email = new_email()
    started = time.monotonic()
    status, body = stack.http("POST", "/users", {"email": email, "state": "NY", "city": "Brooklyn",
                                                 "zipcode": "11201"})
    assert status == 201, body
    # THEN replication (stream poller → replicate_users → target table) shows it by state within 2 s
    found = eventually(lambda: [u for u in by_state(stack, "NY") if u["email"] == email], timeout=2.0)
    elapsed = time.monotonic() - started
    assert found == [{"state": "NY", "city": "Brooklyn", "email": email, "active": True,
                      "city_email": f"Brooklyn#{email}"}], f"not replicated within 2 s ({elapsed:.2f} s)"
    print(f"POST → queryable by state in {elapsed:.3f} s")


def test_a_move_and_a_delete_are_reflected_in_the_target(stack):
    mover, leaver = new_email(), new_email()
    for email, city in ((mover, "Cleveland"), (leaver, "Cincinnati")):
        assert stack.http("POST", "/users", {"email": email, "state": "OH", "city": city, "zipcode": "44113"})[0] == 201
    # WHEN one moves to another state and the other is deleted
    assert stack.http("PATCH", f"/users/{mover}", {"state": "CA", "city": "Los Angeles", "zipcode": "90012"})[0] == 200
    assert stack.http("DELETE", f"/users/{leaver}")[0] == 204

    # THEN the target holds the mover only under the new place, and the deleted user nowhere
    def settled():
        ohio = {u["email"] for u in by_state(stack, "OH")}
        california = [u for u in by_state(stack, "CA") if u["email"] == mover]
        return not ({mover, leaver} & ohio) and california

    moved = eventually(settled, FLOW_TIMEOUT)
    assert moved and moved[0]["city"] == "Los Angeles", stack.output()[-3000:]


def test_a_change_becomes_an_event_in_the_example_subscriber_queue(stack):
    email = new_email()
    assert stack.http("POST", "/users", {"email": email, "state": "NY", "city": "Staten Island",
                                         "zipcode": "10301"})[0] == 201
    sqs = stack.client("sqs")
    queue = sqs.get_queue_url(QueueName=stack.outputs()["SubscriberQueueUrl"].rsplit("/", 1)[-1])["QueueUrl"]

    def our_event():
        for message in sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", []):
            event = json.loads(message["Body"])
            sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
            if event["detail"]["keys"] == {"email": email}:
                return event
        return None

    event = eventually(our_event, FLOW_TIMEOUT)
    assert event is not None, stack.output()[-3000:]
    assert (event["source"], event["detail-type"]) == ("stream-pipeline.users", "INSERT")
    assert event["detail"]["newImage"]["city"] == "Staten Island"
    assert event["detail"]["oldImage"] is None


def test_a_device_message_on_the_ingest_queue_is_stored(stack):
    user_id = new_email()
    outputs = stack.outputs()
    sqs = stack.client("sqs")
    queue = sqs.get_queue_url(QueueName=outputs["IngestQueueName"])["QueueUrl"]
    message_id = sqs.send_message(QueueUrl=queue, MessageBody=json.dumps(
        {"user_id": user_id, "device": "iPhone", "location": "Brooklyn"}))["MessageId"]
    dynamodb = stack.client("dynamodb")

    def stored():
        return dynamodb.query(TableName=outputs["DeviceMetadataTable"], KeyConditionExpression="user_id = :u",
                              ExpressionAttributeValues={":u": {"S": user_id}})["Items"]

    items = eventually(stored, FLOW_TIMEOUT)
    assert len(items) == 1, stack.output()[-3000:]
    assert items[0]["device"] == {"S": "iPhone"}
    assert items[0]["message_id"] == {"S": message_id}
    assert items[0]["seen_at"]["S"].endswith(f"#{message_id}")


def test_an_order_is_processed_even_though_its_handler_failed_once_and_got_the_batch_again(stack):
    # GIVEN the stack started with LOCAL_STACK_FAIL_ONCE=process_orders
    status, order = stack.http("POST", "/orders", {"name": "e2e", "items": [
        {"sku": "A", "quantity": 2, "unit_price": 1.25}, {"sku": "B", "quantity": 1, "unit_price": 0.5}]})
    assert status == 202 and order["status"] == "PENDING", order

    # WHEN the orders stream runs the job  THEN the order ends PROCESSED with its exact total
    def processed():
        answer = stack.http("GET", f"/orders/{order['id']}")[1]
        return answer if answer.get("status") == "PROCESSED" else None

    done = eventually(processed, FLOW_TIMEOUT)
    assert done is not None, stack.output()[-3000:]
    assert done["total"] == 3

    # AND the log shows the first delivery raising and the very same batch delivered again
    failed = [line for line in stack.lines if "process_orders ←" in line and "raised InjectedFault" in line]
    assert len(failed) == 1, stack.output()
    span = re.search(r"record\(s\) (\[\S+\])", failed[0]).group(1)
    retried = [line for line in stack.lines
               if "process_orders ←" in line and span in line and " ok " in line and "(retry 1" in line]
    assert retried, stack.output()


def test_ctrl_c_stops_everything_with_exit_code_0_and_a_second_start_on_the_same_ports_works():
    emulator_port, api_port = free_port(), free_port()
    for attempt in (1, 2):
        process = LocalStackProcess(emulator_port, api_port)
        try:
            process.wait_ready()
            assert process.api == f"http://127.0.0.1:{api_port}"
            assert process.http("GET", "/users/nobody@example.com")[0] == 404
        finally:
            code = process.stop()
        assert code == 0, f"start {attempt}: exit {code}\n{process.output()}"
        assert "stopped" in process.lines[-1], process.output()


def test_the_dev_api_is_open_and_says_at_start_that_nothing_throttles_it(stack):
    # dev is open on AWS too: an unsigned read answers (a deployed prod answers 403 without SigV4)
    assert stack.http("GET", "/orders?status=PENDING")[0] == 200
    (line,) = [line for line in stack.lines if "API of stage dev" in line]
    assert "open (API_AUTH=none)" in line and "not throttled here" in line, line
    assert "Mappings.ApiThrottling" in line, line


def test_the_demo_walks_through_every_flow_against_the_running_stack(stack):
    # `make demo` is this command with the default ports
    result = subprocess.run([sys.executable, "-m", "local_stack.demo", "--api", stack.api, "--emulator",
                             stack.emulator], cwd=ROOT, capture_output=True, text=True, timeout=120,
                            env={**{k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
                                 "COLUMNS": "200"})
    assert result.returncode == 0, result.stdout + result.stderr
    for expected in ("Columbus", "Staten Island", "MODIFY", "REMOVE", "iPhone 15", "PROCESSED", "7.25"):
        assert expected in result.stdout, result.stdout
    assert "✗" not in result.stdout
    # it ends with the consumers' table, every consumer with records in and applied (their EMF metrics)
    table = result.stdout[result.stdout.index("consumers, last hour"):]
    rows = {cells[0]: cells[1:] for line in table.splitlines()
            if len(cells := [cell.strip() for cell in line.strip("│┃ ").split("│")]) == 7}
    for consumer in ("replication", "fanout", "orders", "ingest"):
        records_in, applied = (float(rows[consumer][i].replace(",", "")) for i in (0, 1))
        assert records_in > 0 and applied > 0, table


@pytest.mark.parametrize("which", ["emulator", "api"])
def test_a_busy_port_is_a_clear_error_not_a_hang(which):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = LocalStackProcess(**{f"{which}_port": port})
        try:
            deadline = time.monotonic() + 60
            while process.running and time.monotonic() < deadline:
                time.sleep(0.1)
        finally:
            code = process.stop()
    assert code == 1, process.output()
    assert "cannot start" in process.output() and str(port) in process.output()
    assert "local stack ready" not in process.output()


def test_an_invalid_device_message_goes_to_the_ingest_dead_letter_queue_and_is_not_stored(stack):
    outputs = stack.outputs()
    sqs = stack.client("sqs")
    queue = sqs.get_queue_url(QueueName=outputs["IngestQueueName"])["QueueUrl"]
    dlq = sqs.get_queue_url(QueueName=outputs["IngestDlqUrl"].rsplit("/", 1)[-1])["QueueUrl"]
    marker = uuid.uuid4().hex
    message_id = sqs.send_message(QueueUrl=queue, MessageBody=json.dumps({"user_id": marker}))["MessageId"]

    def dead_letter():
        for message in sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10).get("Messages", []):
            letter = json.loads(message["Body"])
            if letter.get("record", {}).get("messageId") == message_id:
                return letter
        return None

    letter = eventually(dead_letter, FLOW_TIMEOUT)
    assert letter is not None, stack.output()[-3000:]
    assert letter["consumer"] == "ingest"
    assert letter["record"]["eventSource"] == "aws:sqs"  # the Lambda record, unchanged
    items = stack.client("dynamodb").query(TableName=outputs["DeviceMetadataTable"],
                                           KeyConditionExpression="user_id = :u",
                                           ExpressionAttributeValues={":u": {"S": marker}})["Items"]
    assert items == []


# --- observability: the consumers' metrics in the emulator's CloudWatch; nothing personal in the stack's log ------

def metric_sums(stack: LocalStackProcess) -> dict[tuple[str, str], float]:
    """(consumer, metric) → the Sum over the last hour, read back with GetMetricStatistics."""
    cloudwatch = stack.client("cloudwatch")
    now = time.time()
    sums = {}
    for consumer in ("replication", "fanout", "orders", "ingest"):
        for metric in ("RecordsIn", "RecordsApplied", "RecordsDeadLettered"):
            points = cloudwatch.get_metric_statistics(
                Namespace="stream-pipeline", MetricName=metric, Dimensions=[{"Name": "consumer", "Value": consumer}],
                StartTime=now - 3600, EndTime=now + 60, Period=60, Statistics=["Sum"])["Datapoints"]
            sums[consumer, metric] = sum(point["Sum"] for point in points)
    return sums


def test_the_consumers_metrics_reach_the_emulators_cloudwatch_with_the_right_sums(stack):
    # GIVEN the sums so far (other tests share this stack)
    before = metric_sums(stack)
    outputs = stack.outputs()
    sqs = stack.client("sqs")
    queue = sqs.get_queue_url(QueueName=outputs["IngestQueueName"])["QueueUrl"]

    # WHEN 2 users are created, 5 valid and 2 invalid device messages sent, and 1 order placed
    for _ in range(2):
        assert stack.http("POST", "/users", {"email": new_email(), "state": "MT", "city": "Helena",
                                             "zipcode": "59601"})[0] == 201
    for n in range(7):
        body = {"user_id": f"u{n}", "device": "pixel", "location": "Helena"} if n < 5 else {"user_id": f"u{n}"}
        sqs.send_message(QueueUrl=queue, MessageBody=json.dumps(body))
    assert stack.http("POST", "/orders", {"name": "metrics", "items": [
        {"sku": "SKU-1", "quantity": 1, "unit_price": 1}]})[0] == 202
    expected = {("replication", "RecordsIn"): 2, ("replication", "RecordsApplied"): 2,
                ("fanout", "RecordsIn"): 2, ("fanout", "RecordsApplied"): 2,
                ("ingest", "RecordsIn"): 7, ("ingest", "RecordsApplied"): 5, ("ingest", "RecordsDeadLettered"): 2,
                ("orders", "RecordsApplied"): 1}

    # THEN CloudWatch's sums grew by exactly what the consumers did (each invocation forwards its EMF document)
    def grown() -> dict[tuple[str, str], float] | None:
        after = metric_sums(stack)
        delta = {key: after[key] - before[key] for key in expected}
        return delta if delta == expected else None

    assert eventually(grown, FLOW_TIMEOUT, interval=0.5) == expected, (
        {key: metric_sums(stack)[key] - before[key] for key in expected}, stack.output()[-3000:])


CANARIES = ("Zqxville-7f3a", "ZQ-91c2", "98765-4321", "canary.e4f1", "canary-dev-5b1e", "canary-loc-9d0c",
            "canary-x-33aa", "canary-ord-c4d2", "canary-sku-77e1", "1234.5678")


def test_the_stacks_delivery_and_access_log_hold_no_personal_data(stack):
    # GIVEN a user, device messages and an order holding canary values, through every route and consumer
    email = f"canary.e4f1.{uuid.uuid4().hex[:6]}@example.com"
    user = {"email": email, "state": "ZQ-91c2", "city": "Zqxville-7f3a", "zipcode": "98765-4321"}
    start = len(stack.lines)
    assert stack.http("POST", "/users", user)[0] == 201
    assert stack.http("POST", "/users", {**user, "battery": "canary-x-33aa"})[0] == 400
    assert stack.http("GET", f"/users/{email}")[0] == 200
    assert stack.http("PATCH", f"/users/{email}", {"city": "Zqxville-7f3a-b"})[0] == 200
    assert stack.http("GET", "/users?state=ZQ-91c2&city=Zqxville-7f3a-b")[0] == 200
    status, order = stack.http("POST", "/orders", {"name": "canary-ord-c4d2", "items": [
        {"sku": "canary-sku-77e1", "quantity": 1, "unit_price": 1234.5678}]})
    assert status == 202
    assert stack.http("GET", f"/orders/{order['id']}")[0] == 200
    sqs = stack.client("sqs")
    queue = sqs.get_queue_url(QueueName=stack.outputs()["IngestQueueName"])["QueueUrl"]
    sighting = {"user_id": email, "device": "canary-dev-5b1e", "location": "canary-loc-9d0c"}
    sqs.send_message(QueueUrl=queue, MessageBody=json.dumps(sighting))
    sqs.send_message(QueueUrl=queue, MessageBody=json.dumps({**sighting, "battery": ["canary-x-33aa"]}))
    assert stack.http("DELETE", f"/users/{email}")[0] == 204

    # WHEN every flow has run (the order processed, the user's removal replicated)
    assert eventually(lambda: stack.http("GET", f"/orders/{order['id']}")[1]["status"] != "PENDING", FLOW_TIMEOUT)
    assert eventually(lambda: not by_state(stack, "ZQ-91c2"), FLOW_TIMEOUT)
    time.sleep(1)  # the ingest and fan-out deliveries' lines

    # THEN the stack's output names routes, functions and record ids, and holds none of the values
    lines = stack.lines[start:]
    assert any("/users/{email}" in line for line in lines), "\n".join(lines[-50:])
    assert any("ingest_device_metadata" in line for line in lines), "\n".join(lines[-50:])
    leaks = [(canary, line) for line in lines for canary in CANARIES if canary in line]
    assert not leaks, leaks
