"""Delivering to the app's handlers as Lambda does, in-process and without sleeping.

- Streams: the local stack's own `StreamPoller` (shard order, retries, bisect, MaximumRetryAttempts, the
  on-failure record) with each function's real mapping settings from the merge template, on a clock the
  run moves by hand.
- Queues: `QueueDeliverer`, an SQS event source mapping whose visibility timeout passes at once: a message
  the handler left comes back on the next receive (the queue's maxReceiveCount still applies).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import boto3

from local_stack.delivery import RetryPolicy, queue_deletions
from local_stack.invocation import Invoker
from local_stack.sources import StreamSource
from local_stack.stream_poller import StreamPoller
from tests.support.resources import STAGE
from tooling.lambda_shapes import lambda_sqs_record
from tooling.merge_template import load_mapping_settings, template_variables

RECEIVE_MAX = 10


class Clock:
    """Monotonic time the run moves by hand: retry delays and batching windows pass without sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Handler:
    """One of the app's handlers, counting what Lambda would see: invocations, errors by type, and the
    sequence numbers (or message ids) of every batch, in delivery order. `twice`: every batch is delivered
    a second time right after the first (at-least-once delivery at its worst)."""

    name: str
    twice: bool = False
    invocations: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    batches: list[list[str]] = field(default_factory=list)

    def __call__(self, event: dict[str, Any], context: Any) -> Any:
        import app

        handler = getattr(app, self.name)
        self.batches.append([_record_id(record) for record in event["Records"]])
        for _ in range(2 if self.twice else 1):
            self.invocations += 1
            try:
                answer = handler(event, context)
            except Exception as error:
                self.errors[type(error).__name__] += 1
                raise
        return answer


def _record_id(record: dict[str, Any]) -> str:
    return record["dynamodb"]["SequenceNumber"] if "dynamodb" in record else record["messageId"]


def stream_poller(handler: Handler, stream_arn: str, clock: Clock) -> StreamPoller:
    """A poller feeding `handler` from `stream_arn` with its function's mapping settings (retries, bisect,
    on-failure destination), reading the stream and sending failure records with plain clients (no faults)."""
    settings = load_mapping_settings(handler.name, template_variables(STAGE))
    source = StreamSource(handler.name, f"app.{handler.name}", stream_arn, 100, "TRIM_HORIZON", 0.0)
    invoker = Invoker(handler.name, handler, settings.report_failures, clock=clock,
                      function_name=f"stream-pipeline-{STAGE}-{handler.name}")
    return StreamPoller(source, invoker, boto3.client("dynamodbstreams"), RetryPolicy(), settings,
                        boto3.client("sqs"), clock=clock, wall=time.time)


def drain_streams(pollers: Sequence[StreamPoller], clock: Clock, idle_rounds: int = 3) -> int:
    """Poll until every poller has delivered everything in its stream; the number of rounds."""
    rounds, idle = 0, 0
    while idle < idle_rounds:
        rounds += 1
        delivered = False
        for poller in pollers:
            delivered = poller.poll_once() or delivered
        busy = any(shard.buffer for poller in pollers for shard in poller.shards.values())
        idle = 0 if delivered or busy else idle + 1
        clock.now += RetryPolicy().cap + 0.5  # past any retry delay
    return rounds


class QueueDeliverer:
    """Lambda's SQS event source mapping for `handler` (batches of up to `batch_size`, messages deleted as
    Lambda deletes them), except that a message left in the queue is visible again at once."""

    def __init__(self, handler: Handler, url: str, batch_size: int = 100, report_failures: bool = True):
        self.sqs = boto3.client("sqs")
        self.url = url
        self.arn = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        self.batch_size = batch_size
        self.invoker = Invoker(handler.name, handler, report_failures, function_name=f"stream-pipeline-{STAGE}-"
                               f"{handler.name}")

    def drain(self, limit: int = 100_000) -> int:
        """Deliver until the queue is empty; the number of deliveries."""
        deliveries = 0
        while deliveries < limit:
            batch = self._receive()
            if not batch:
                return deliveries
            deliveries += 1
            ids = [message["MessageId"] for message in batch]
            event = {"Records": [lambda_sqs_record(message, self.arn) for message in batch]}
            delivery = self.invoker.invoke(event, ids, "queue")
            deleted = set(queue_deletions(ids, delivery.outcome))
            handles = {m["MessageId"]: m["ReceiptHandle"] for m in batch}
            self._each_ten(self.sqs.delete_message_batch, [(i, handles[i]) for i in ids if i in deleted], {})
            # The visibility timeout passes: what the handler did not finish comes back on the next receive
            # (a finished message the handler deleted itself is refused here, harmlessly).
            self._each_ten(self.sqs.change_message_visibility_batch, [(i, handles[i]) for i in ids if i not in deleted],
                           {"VisibilityTimeout": 0})
        raise AssertionError(f"queue not drained after {limit} deliveries")

    def _receive(self) -> list[dict[str, Any]]:
        batch: dict[str, dict[str, Any]] = {}
        while len(batch) < self.batch_size:
            answer = self.sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=RECEIVE_MAX,
                                              AttributeNames=["All"], VisibilityTimeout=600, WaitTimeSeconds=0)
            messages = answer.get("Messages", [])
            if not messages:
                break
            batch.update((message["MessageId"], message) for message in messages)
        return list(batch.values())

    def _each_ten(self, call: Callable[..., Any], entries: list[tuple[str, str]], extra: dict[str, Any]) -> None:
        for start in range(0, len(entries), RECEIVE_MAX):
            chunk = entries[start:start + RECEIVE_MAX]
            call(QueueUrl=self.url, Entries=[{"Id": str(n), "ReceiptHandle": handle, **extra}
                                             for n, (_, handle) in enumerate(chunk)])


def read_all(url: str) -> list[dict[str, Any]]:
    """Every message body on a queue, parsed, each received once and left hidden (no delete: half the calls)."""
    sqs = boto3.client("sqs")
    return [json.loads(text) for _, text in _receive_all(sqs, url).values()]


def peek(url: str) -> list[tuple[str, str]]:
    """Every message on a queue as (MessageId, body), left in the queue (visible again at once)."""
    sqs = boto3.client("sqs")
    seen = _receive_all(sqs, url)
    handles = [(identifier, handle) for identifier, (handle, _) in seen.items()]
    for start in range(0, len(handles), RECEIVE_MAX):
        sqs.change_message_visibility_batch(QueueUrl=url, Entries=[
            {"Id": str(n), "ReceiptHandle": handle, "VisibilityTimeout": 0}
            for n, (_, handle) in enumerate(handles[start:start + RECEIVE_MAX])])
    return [(identifier, text) for identifier, (_, text) in seen.items()]


def letter_of(body: str) -> dict[str, Any] | None:
    """A dead letter's envelope (or Lambda's failure record), or None for a raw message a queue's redrive
    policy moved there (its body is the original message, JSON or not)."""
    try:
        parsed = json.loads(body)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) and ("consumer" in parsed or "DDBStreamBatchInfo" in parsed) else None


def _receive_all(sqs: Any, url: str) -> dict[str, tuple[str, str]]:
    seen: dict[str, tuple[str, str]] = {}
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=RECEIVE_MAX,
                                          VisibilityTimeout=600, WaitTimeSeconds=0).get("Messages", []):
        for message in messages:
            seen[message["MessageId"]] = (message["ReceiptHandle"], message["Body"])
    return seen
