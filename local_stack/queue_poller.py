"""An SQS event source mapping, and the on_cw_event plumbing built on one.

Queue: batches gathered up to the decorator's size and window; deleted when the handler succeeds; left
alone when it raises, so they return after the queue's visibility timeout and the emulator's redrive policy
moves them to the dead-letter queue after maxReceiveCount receives. batchItemFailures (when enabled) keeps
only the failed messages.

Bus: a rule on the default event bus with the handler's event pattern, targeting a queue of the stack's own;
each event is one invocation, as EventBridge invokes Lambda (asynchronously: an event that keeps failing
is dropped after 3 attempts, Lambda's default for asynchronous invocations).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

from local_stack.delivery import Result, batch_due, queue_deletions
from local_stack.invocation import Invoker
from local_stack.sources import BusSource, QueueSource
from tooling.lambda_shapes import lambda_bus_event, lambda_sqs_record

logger = logging.getLogger("local_stack.queues")

RECEIVE_MAX = 10  # SQS's maximum per ReceiveMessage
LONG_POLL_SECONDS = 1  # short enough that Ctrl-C never waits long for a poller
ASYNC_ATTEMPTS = 3  # Lambda's asynchronous invocation: the first attempt and two retries
BUS_RETRY_VISIBILITY = 1  # seconds before a failed bus event is tried again (Lambda waits about 1-2 minutes)


class QueuePoller:
    """Feeds one `@app.on_sqs_message` handler."""

    def __init__(self, source: QueueSource, invoker: Invoker, sqs: Any, region: str = "us-east-1",
                 clock: Callable[[], float] = time.monotonic, wait: int = LONG_POLL_SECONDS):
        self.source = source
        self._wait = wait
        self.calls = 0  # SQS API calls made
        self._invoker = invoker
        self._sqs = sqs
        self._region = region
        self._clock = clock
        self._url: str | None = None
        self._arn = ""
        self._buffer: list[dict[str, Any]] = []
        self._first_buffered_at: float | None = None

    def poll_once(self) -> bool:
        """Receive, and deliver when the batch is due; True when a batch was delivered."""
        if self._url is None:
            self._resolve()
        room = self.source.batch_size - len(self._buffer)
        if room > 0:
            self.calls += 1
            # Long polling when empty (as Lambda does): the emulator answers the moment a message arrives.
            wait = 0 if self._buffer else self._wait
            messages = self._sqs.receive_message(QueueUrl=self._url, MaxNumberOfMessages=min(RECEIVE_MAX, room),
                                                 AttributeNames=["All"], MessageAttributeNames=["All"],
                                                 WaitTimeSeconds=wait).get("Messages", [])
            if messages and not self._buffer:
                self._first_buffered_at = self._clock()
            self._gather(messages)
        waited = self._clock() - (self._first_buffered_at or self._clock())
        if not batch_due(len(self._buffer), self.source.batch_size, waited, self.source.batching_window):
            return False
        batch, self._buffer = self._buffer[: self.source.batch_size], self._buffer[self.source.batch_size:]
        self._first_buffered_at = self._clock() if self._buffer else None
        self._deliver(batch)
        return True

    def _gather(self, messages: list[dict[str, Any]]) -> None:
        # A message seen again while gathering (its visibility timeout is shorter than the window) is one
        # message: keep its newest receipt handle, the only one that can delete it.
        position = {message["MessageId"]: i for i, message in enumerate(self._buffer)}
        for message in messages:
            if message["MessageId"] in position:
                self._buffer[position[message["MessageId"]]] = message
            else:
                position[message["MessageId"]] = len(self._buffer)
                self._buffer.append(message)

    def _resolve(self) -> None:
        self.calls += 2
        self._url = self._sqs.get_queue_url(QueueName=self.source.queue_name)["QueueUrl"]
        self._arn = self._sqs.get_queue_attributes(QueueUrl=self._url, AttributeNames=["QueueArn"])[
            "Attributes"]["QueueArn"]
        logger.info("%s: polling queue %s", self.source.name, self.source.queue_name)

    def _deliver(self, batch: list[dict[str, Any]]) -> None:
        ids = [message["MessageId"] for message in batch]
        event = {"Records": [lambda_sqs_record(message, self._arn, self._region) for message in batch]}
        receives = max(int(m.get("Attributes", {}).get("ApproximateReceiveCount", "1")) for m in batch)
        note = f"receive {receives}" if receives > 1 else ""
        delivery = self._invoker.invoke(event, ids, f"queue {self.source.queue_name}", note)
        keep = queue_deletions(ids, delivery.outcome)
        handles = {message["MessageId"]: message["ReceiptHandle"] for message in batch}
        self._delete([(identifier, handles[identifier]) for identifier in keep])
        if delivery.outcome.result is not Result.OK:
            logger.info("%s: %d message(s) stay in %s until their visibility timeout", self.source.name,
                        len(ids) - len(keep), self.source.queue_name)

    def _delete(self, entries: list[tuple[str, str]]) -> None:
        for start in range(0, len(entries), RECEIVE_MAX):
            chunk = entries[start:start + RECEIVE_MAX]
            self.calls += 1
            answer = self._sqs.delete_message_batch(QueueUrl=self._url, Entries=[
                {"Id": str(i), "ReceiptHandle": handle} for i, (_, handle) in enumerate(chunk)])
            for failed in answer.get("Failed", []):
                logger.warning("%s: could not delete a message: %s", self.source.name, failed.get("Message"))


def bus_resource_name(stage: str, source: BusSource) -> str:
    """Name of the rule and queue the local stack creates for one on_cw_event handler."""
    return f"stream-pipeline-{stage}-local-{source.name}"[:64]


class BusPoller:
    """Feeds one `@app.on_cw_event` handler through a rule on the default bus and a queue."""

    def __init__(self, source: BusSource, invoker: Invoker, sqs: Any, events: Any, stage: str = "dev",
                 region: str = "us-east-1", account: str = "123456789012", wait: int = LONG_POLL_SECONDS):
        self.source = source
        self._wait = wait
        self.calls = 0  # SQS and EventBridge API calls made
        self._invoker = invoker
        self._sqs = sqs
        self._events = events
        self._stage = stage
        self._region = region
        self._account = account
        self._url: str | None = None

    def setup(self) -> None:
        """Create (or update) the queue and the rule routing matching default-bus events to it."""
        name = bus_resource_name(self._stage, self.source)
        self.calls += 4
        self._url = self._sqs.create_queue(QueueName=name, Attributes={
            "VisibilityTimeout": str(BUS_RETRY_VISIBILITY)})["QueueUrl"]
        arn = self._sqs.get_queue_attributes(QueueUrl=self._url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"]
        self._events.put_rule(Name=name, EventPattern=json.dumps(self.source.event_pattern), State="ENABLED")
        self._events.put_targets(Rule=name, Targets=[{"Id": "local-stack", "Arn": arn}])
        logger.info("%s: rule %s on the default bus → %s", self.source.name, name, name)

    def poll_once(self) -> bool:
        """Deliver each received event in its own invocation; True when any was delivered."""
        if self._url is None:
            self.setup()
        self.calls += 1
        messages = self._sqs.receive_message(QueueUrl=self._url, MaxNumberOfMessages=RECEIVE_MAX,
                                             AttributeNames=["All"], WaitTimeSeconds=self._wait).get("Messages", [])
        for message in messages:
            event = lambda_bus_event(json.loads(message["Body"]), self._account, self._region)
            attempt = int(message.get("Attributes", {}).get("ApproximateReceiveCount", "1"))
            delivery = self._invoker.invoke(event, [str(event.get("id", ""))], f"bus default ({event['source']})",
                                            f"attempt {attempt}" if attempt > 1 else "")
            if delivery.outcome.result is Result.OK or attempt >= ASYNC_ATTEMPTS:
                if delivery.outcome.result is not Result.OK:
                    logger.error("%s: dropped event %s after %d attempts", self.source.name, event.get("id"),
                                 attempt)
                self.calls += 1
                self._sqs.delete_message(QueueUrl=self._url, ReceiptHandle=message["ReceiptHandle"])
        return bool(messages)
