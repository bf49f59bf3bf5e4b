"""Reading a dead-letter queue from the operator's side: receive, classify, delete or release.

Receiving hides a message for the visibility timeout, so one pass sees each message once; `release`
makes messages visible again at once (ChangeMessageVisibility 0) when they are only being looked at.
Receiving raises a message's ApproximateReceiveCount — harmless on a dead-letter queue, which has no
redrive policy of its own. `calls` counts SQS requests.

A letter too large for its queue arrives as the pointer envelope (`"record": null`, `"recordLocation"`):
the inbox reads the whole letter from S3, so every reader (redrive, `--dry-run`, `status --peek`) sees
the record; `delete` removes the object first, then the message.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from chalicelib.dead_letters import SQS_BATCH_LIMIT, DeadLetter, LetterStore
from chalicelib.retry import GaveUp
from ops.stream_batch_failure import StreamBatchFailure
from tooling.lambda_shapes import lambda_sqs_record

RAW_INGEST_REASON = "moved by the ingest queue's redrive policy (maxReceiveCount)"


@dataclass(frozen=True)
class InboxMessage:
    """One received message: a dead letter, or (ingest DLQ) a raw message the queue itself moved."""

    message_id: str
    receipt_handle: str
    body: str
    attributes: dict[str, str]
    letter: DeadLetter | None
    problem: str = ""  # why `letter` is None
    batch_failure: StreamBatchFailure | None = None  # Lambda's own record of a batch it gave up on
    record_location: str | None = None  # where the whole letter is kept (a letter too large for its queue)

    @property
    def consumer(self) -> str:
        if self.letter:
            return self.letter.consumer
        if self.batch_failure and self.batch_failure.consumer:
            return self.batch_failure.consumer
        return "unknown"

    @property
    def reason(self) -> str:
        if self.letter:
            return self.letter.reason
        return self.batch_failure.reason if self.batch_failure else self.problem


def classify(message: dict[str, Any], raw_is_ingest: bool, store: LetterStore | None = None) -> InboxMessage:
    """Read an SQS message as a dead letter (following a pointer into S3 through `store`); on the ingest DLQ
    a non-envelope body is an ingest message."""
    body = str(message.get("Body", ""))
    attributes = dict(message.get("Attributes") or {})
    message_id, handle = str(message.get("MessageId", "")), str(message.get("ReceiptHandle", ""))
    try:
        letter = DeadLetter.from_json(body)
    except (ValueError, TypeError) as error:
        failure = StreamBatchFailure.parse(_json_or_none(body))
        if failure is not None:
            return InboxMessage(message_id, handle, body, attributes, None, batch_failure=failure)
        if raw_is_ingest:
            record = sqs_record(message)
            letter = DeadLetter("ingest", RAW_INGEST_REASON, "", _receive_count(attributes), record)
            return InboxMessage(message_id, handle, body, attributes, letter)
        return InboxMessage(message_id, handle, body, attributes, None, f"not a dead letter: {error}")
    location = letter.record_location
    if location is None:
        return InboxMessage(message_id, handle, body, attributes, letter)
    try:
        if store is None:
            raise ValueError("no letter store to read it from")
        whole = store.get(location)
    except (GaveUp, ValueError) as error:  # gone, unreadable, or not a letter: the pointer stays for a human
        return InboxMessage(message_id, handle, body, attributes, None, f"letter in {location} not readable: {error}",
                            record_location=location)
    return InboxMessage(message_id, handle, body, attributes, whole, record_location=location)


def sqs_record(message: dict[str, Any], queue_arn: str = "") -> dict[str, Any]:
    """The Lambda SQS record of a raw message (no receipt handle: a replay must never delete by it)."""
    return lambda_sqs_record(message, queue_arn, receipt_handle=False)


def _json_or_none(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _receive_count(attributes: dict[str, str]) -> int:
    text = attributes.get("ApproximateReceiveCount", "0")
    return int(text) if text.isdigit() else 0


class DeadLetterInbox:
    """One dead-letter queue, read in passes."""

    def __init__(self, sqs: Any, queue_url: str, raw_is_ingest: bool = False, label: str = "",
                 store: LetterStore | None = None):
        self._sqs = sqs
        self._store = store
        self.queue_url = queue_url
        self._raw_is_ingest = raw_is_ingest
        self.label = label or self.name
        self.calls = 0

    @property
    def name(self) -> str:
        return self.queue_url.rstrip("/").rsplit("/", 1)[-1]

    def depth(self) -> dict[str, int]:
        """ApproximateNumberOfMessages / NotVisible / Delayed."""
        return queue_depth(self._sqs, self.queue_url, self)

    def receive(self, visibility_timeout: int, limit: int | None = None,
                wait_seconds: int = 1) -> Iterator[InboxMessage]:
        """Every message visible now (up to `limit`), each hidden for `visibility_timeout` seconds once received.

        SQS samples servers on each receive, so an empty answer is retried once before concluding
        the queue is drained.
        """
        yielded, empty_answers = 0, 0
        while limit is None or yielded < limit:
            count = SQS_BATCH_LIMIT if limit is None else min(SQS_BATCH_LIMIT, limit - yielded)
            self.calls += 1
            answer = self._sqs.receive_message(
                QueueUrl=self.queue_url, MaxNumberOfMessages=count, VisibilityTimeout=visibility_timeout,
                WaitTimeSeconds=wait_seconds, AttributeNames=["All"], MessageAttributeNames=["All"],
            )
            messages = answer.get("Messages", [])
            if not messages:
                empty_answers += 1
                if empty_answers >= 2:
                    return
                continue
            empty_answers = 0
            for message in messages:
                yielded += 1
                yield classify(message, self._raw_is_ingest, self._store)

    def delete(self, message: InboxMessage) -> None:
        """Remove a message that was applied: its S3 object first (if any), then the message (raises GaveUp or
        a botocore error; then the message stays)."""
        if message.record_location is not None and self._store is not None:
            self._store.delete(message.record_location)
        self.calls += 1
        self._sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message.receipt_handle)

    def release(self, messages: Sequence[InboxMessage]) -> None:
        """Make messages visible again now (they were only looked at, or are left for later)."""
        for start in range(0, len(messages), SQS_BATCH_LIMIT):
            chunk = messages[start:start + SQS_BATCH_LIMIT]
            self.calls += 1
            self._sqs.change_message_visibility_batch(QueueUrl=self.queue_url, Entries=[
                {"Id": str(i), "ReceiptHandle": m.receipt_handle, "VisibilityTimeout": 0}
                for i, m in enumerate(chunk)
            ])


def queue_depth(sqs: Any, queue_url: str, counter: Any = None) -> dict[str, int]:
    """A queue's approximate visible, in-flight and delayed message counts."""
    if counter is not None:
        counter.calls += 1
    answer = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=[
        "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible", "ApproximateNumberOfMessagesDelayed",
    ])["Attributes"]
    return {
        "visible": int(answer.get("ApproximateNumberOfMessages", 0)),
        "in_flight": int(answer.get("ApproximateNumberOfMessagesNotVisible", 0)),
        "delayed": int(answer.get("ApproximateNumberOfMessagesDelayed", 0)),
    }


def body_preview(body: str, width: int = 80) -> str:
    """A one-line preview of a message body."""
    try:
        text = json.dumps(json.loads(body), separators=(",", ":"))
    except ValueError:
        text = body
    text = " ".join(text.split())
    return text if len(text) <= width else text[:width - 1] + "…"
