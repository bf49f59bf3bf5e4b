"""The SQS and event-bus pollers against moto: deletes, redelivery, redrive, batchItemFailures, bus rules."""

from __future__ import annotations

import json
from typing import Any

import boto3

from local_stack.invocation import Invoker
from local_stack.queue_poller import BusPoller, QueuePoller
from local_stack.sources import BusSource, QueueSource


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Recorder:
    """Records each batch's bodies; raises while `fail(bodies)` says so; answers `response(records)`."""

    def __init__(self, fail: Any = None, response: Any = None):
        self.batches: list[list[str]] = []
        self.events: list[dict[str, Any]] = []
        self._fail = fail or (lambda bodies: False)
        self._response = response

    def __call__(self, event: dict[str, Any], context: Any) -> Any:
        self.events.append(event)
        bodies = [r["body"] for r in event.get("Records", [])]
        self.batches.append(bodies)
        if self._fail(bodies):
            raise RuntimeError("handler failed")
        return self._response(event["Records"]) if self._response else None


def make_queue(name: str, visibility: int = 0, max_receive: int | None = None) -> str:
    sqs = boto3.client("sqs")
    attributes = {"VisibilityTimeout": str(visibility)}
    if max_receive is not None:
        dlq = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        attributes["RedrivePolicy"] = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receive})
    return sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]


def send(url: str, *bodies: str) -> None:
    for body in bodies:
        boto3.client("sqs").send_message(QueueUrl=url, MessageBody=body)


def count(url: str) -> int:
    attributes = boto3.client("sqs").get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])
    return sum(int(v) for v in attributes["Attributes"].values())


def queue_poller(name: str, handler: Recorder, *, batch_size: int = 10, window: float = 0.0,
                 report_failures: bool = False, clock: Clock | None = None) -> QueuePoller:
    clock = clock or Clock()
    source = QueueSource("consumer", "app.consumer", name, batch_size, window)
    return QueuePoller(source, Invoker("consumer", handler, report_failures, clock=clock), boto3.client("sqs"),
                       clock=clock, wait=0)


def test_a_batch_in_lambdas_shape_is_deleted_when_the_handler_succeeds(aws):
    url = make_queue("q")
    send(url, "a", "b", "c")
    handler = Recorder()
    qp = queue_poller("q", handler)
    assert qp.poll_once() is True
    assert sorted(handler.batches[0]) == ["a", "b", "c"]
    record = handler.events[0]["Records"][0]
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"] == "arn:aws:sqs:us-east-1:123456789012:q"
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    assert set(record) >= {"messageId", "receiptHandle", "md5OfBody", "messageAttributes", "awsRegion"}
    assert count(url) == 0
    assert qp.calls == 4  # GetQueueUrl, GetQueueAttributes, ReceiveMessage, DeleteMessageBatch


def test_messages_gather_up_to_the_batch_size_over_several_receives(aws):
    url = make_queue("q", visibility=30)
    send(url, *(f"m{i}" for i in range(25)))
    handler = Recorder()
    qp = queue_poller("q", handler, batch_size=25, window=1.0)
    while not handler.batches:
        qp.poll_once()
    assert len(handler.batches[0]) == 25
    assert count(url) == 0


def test_a_message_received_again_while_gathering_is_delivered_once(aws):
    url = make_queue("q", visibility=0)  # visible again before the window closes
    send(url, "a")
    clock = Clock()
    handler = Recorder()
    qp = queue_poller("q", handler, batch_size=10, window=2.0, clock=clock)
    qp.poll_once()
    qp.poll_once()
    clock.now += 2.0
    qp.poll_once()
    assert handler.batches == [["a"]]
    assert count(url) == 0  # deleted with its newest receipt handle


def test_an_empty_queue_is_long_polled_and_a_message_sent_meanwhile_is_delivered_at_once(aws):
    import threading

    make_queue("q", visibility=30)
    url = boto3.client("sqs").get_queue_url(QueueName="q")["QueueUrl"]
    handler = Recorder()
    source = QueueSource("consumer", "app.consumer", "q", 10, 0.0)
    qp = QueuePoller(source, Invoker("consumer", handler), boto3.client("sqs"), wait=5)
    threading.Timer(0.3, send, args=(url, "late")).start()
    assert qp.poll_once() is True  # one ReceiveMessage waited for the message instead of returning empty
    assert handler.batches == [["late"]]


def test_the_window_holds_a_partial_batch_until_it_passes(aws):
    url = make_queue("q", visibility=30)
    send(url, "a")
    clock = Clock()
    handler = Recorder()
    qp = queue_poller("q", handler, batch_size=10, window=2.0, clock=clock)
    assert qp.poll_once() is False
    clock.now += 2.0
    assert qp.poll_once() is True
    assert handler.batches == [["a"]]


def test_when_the_handler_raises_the_messages_come_back_after_their_visibility_timeout(aws):
    url = make_queue("q", visibility=0)
    send(url, "a")
    failures = iter([True])
    handler = Recorder(fail=lambda bodies: next(failures, False))
    qp = queue_poller("q", handler)
    qp.poll_once()
    qp.poll_once()
    assert handler.batches == [["a"], ["a"]]
    assert handler.events[1]["Records"][0]["attributes"]["ApproximateReceiveCount"] == "2"
    assert count(url) == 0


def test_a_message_that_keeps_failing_is_redriven_to_the_dead_letter_queue(aws):
    url = make_queue("q", visibility=0, max_receive=2)
    send(url, "poison")
    handler = Recorder(fail=lambda bodies: True)
    qp = queue_poller("q", handler)
    for _ in range(4):
        qp.poll_once()
    assert handler.batches == [["poison"], ["poison"]]  # maxReceiveCount receives, then the DLQ
    assert count(url) == 0
    assert count(boto3.client("sqs").get_queue_url(QueueName="q-dlq")["QueueUrl"]) == 1


def test_reported_item_failures_stay_and_the_rest_is_deleted(aws):
    url = make_queue("q", visibility=30)
    send(url, "ok1", "bad", "ok2")

    def report_bad(records):
        return {"batchItemFailures": [{"itemIdentifier": r["messageId"]} for r in records if r["body"] == "bad"]}

    handler = Recorder(response=report_bad)
    queue_poller("q", handler, report_failures=True).poll_once()
    attributes = boto3.client("sqs").get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    assert attributes["ApproximateNumberOfMessagesNotVisible"] == "1"  # only "bad" waits for its timeout


def test_reported_item_failures_are_ignored_when_the_mapping_does_not_report_them(aws):
    url = make_queue("q", visibility=30)
    send(url, "ok1", "bad")
    handler = Recorder(response=lambda records: {"batchItemFailures": [{"itemIdentifier": records[0]["messageId"]}]})
    queue_poller("q", handler, report_failures=False).poll_once()
    assert count(url) == 0


def bus_poller(handler: Recorder) -> BusPoller:
    source = BusSource("on_users", "app.on_users", {"source": ["stream-pipeline.users"]})
    return BusPoller(source, Invoker("on_users", handler), boto3.client("sqs"), boto3.client("events"), "test",
                     wait=0)


def put_event(source: str, detail: dict[str, Any]) -> None:
    boto3.client("events").put_events(Entries=[{"Source": source, "DetailType": "INSERT",
                                                "Detail": json.dumps(detail)}])


def test_matching_default_bus_events_reach_an_on_cw_event_handler_one_per_invocation(aws):
    handler = Recorder()
    bp = bus_poller(handler)
    bp.setup()
    put_event("stream-pipeline.users", {"n": 1})
    put_event("somebody.else", {"n": 2})
    put_event("stream-pipeline.users", {"n": 3})
    bp.poll_once()
    assert sorted(e["detail"]["n"] for e in handler.events) == [1, 3]
    event = handler.events[0]
    assert event["detail-type"] == "INSERT"
    assert event["source"] == "stream-pipeline.users"
    assert {"version", "id", "account", "time", "region", "resources"} <= set(event)
    assert bp.poll_once() is False


def test_a_failing_bus_event_is_tried_three_times_then_dropped(aws):
    handler = Recorder(fail=lambda bodies: True)
    bp = bus_poller(handler)
    bp.setup()
    put_event("stream-pipeline.users", {"n": 1})
    import time

    deadline = time.monotonic() + 10
    while len(handler.events) < 3 and time.monotonic() < deadline:
        bp.poll_once()
        time.sleep(0.1)  # the stack's retry queue makes a failed event visible again after 1 s
    for _ in range(3):
        bp.poll_once()
    assert len(handler.events) == 3
