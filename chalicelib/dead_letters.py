"""Dead letters: the SPEC's envelope around an original Lambda record, and where letters are kept.

`DeadLetterQueue.send` stores letters in one SQS queue and reports which it could not store (the
consumer runtime then makes the handler fail, so Lambda delivers the batch again: nothing is dropped).
A letter of any size is kept: the queue's own size limit (`MaximumMessageSize`, learned once per process
with GetQueueAttributes) sizes each SendMessageBatch (≤ 10 entries, ≤ the limit in all), and an envelope
larger than the limit is stored whole as one S3 object in DEAD_LETTER_BUCKET (`LetterStore`), the queue
getting the same envelope with `"record": null` and `"recordLocation": "s3://<bucket>/<key>"`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from chalicelib import clients
from chalicelib.backoff import Backoff
from chalicelib.clock import iso_utc, utc_now
from chalicelib.faults import Failure, Fault, entry_failure
from chalicelib.retry import CallStats, GaveUp, retry_call, retry_pending

CONSUMERS: tuple[str, ...] = ("replication", "fanout", "orders", "ingest")

SQS_BATCH_LIMIT = 10
S3_SCHEME = "s3://"


class DeadLetterQueueUnavailable(RuntimeError):
    """Dead letters could not be stored; the batch must be delivered again by Lambda."""


@dataclass(frozen=True)
class DeadLetter:
    """A record that a consumer gave up on, with everything needed to replay it.

    `attempts`: how many times the failing operation was attempted for this record; 0 when nothing was
    sent (the record failed before any AWS call, or a systemic fault stopped the batch first).
    `record_location`: set on a letter read from the queue whose record is kept in S3 (`record` is None then).
    """

    consumer: str
    reason: str
    error: str
    attempts: int
    record: Any
    failed_at: datetime = field(default_factory=utc_now)
    record_location: str | None = None

    def to_body(self) -> dict[str, Any]:
        """The message body as the SPEC writes it."""
        body = {
            "consumer": self.consumer,
            "reason": self.reason,
            "error": self.error,
            "attempts": self.attempts,
            "failed_at": iso_utc(self.failed_at),
            "record": self.record,
        }
        if self.record_location is not None:
            body["recordLocation"] = self.record_location
        return body

    def to_json(self) -> str:
        """The message body as JSON text (the record exactly as Lambda delivered it)."""
        return json.dumps(self.to_body(), separators=(",", ":"), default=str)

    def pointing_to(self, location: str) -> DeadLetter:
        """The pointer envelope: the same letter, its record kept at `location`."""
        return replace(self, record=None, record_location=location)

    @classmethod
    def from_json(cls, text: str | bytes) -> DeadLetter:
        """Parse a dead-letter body, or the pointer envelope (raises ValueError when it is neither)."""
        body = json.loads(text)
        if not isinstance(body, dict) or body.get("consumer") not in CONSUMERS or "record" not in body:
            raise ValueError("not a dead letter: needs consumer and record")
        location = body.get("recordLocation")
        if location is not None and (not isinstance(location, str) or not location.startswith(S3_SCHEME)):
            raise ValueError(f"not a dead letter: recordLocation is not an s3:// URL: {location!r}")
        failed_at = datetime.fromisoformat(str(body.get("failed_at", "")).replace("Z", "+00:00"))
        return cls(
            consumer=body["consumer"],
            reason=str(body.get("reason", "")),
            error=str(body.get("error", "")),
            attempts=int(body.get("attempts", 0)),
            record=body["record"],
            failed_at=failed_at,
            record_location=location,
        )


def describe_error(error: BaseException) -> str:
    """`ErrorType: message`, for the envelope's `error` field of a failure that is no AWS error."""
    return f"{type(error).__name__}: {error}"


def s3_location(bucket: str, key: str) -> str:
    """`s3://<bucket>/<key>`."""
    return f"{S3_SCHEME}{bucket}/{key}"


def parse_location(location: str) -> tuple[str, str]:
    """(bucket, key) of `s3://<bucket>/<key>` (ValueError otherwise)."""
    bucket, _, key = location.removeprefix(S3_SCHEME).partition("/")
    if not location.startswith(S3_SCHEME) or not bucket or not key:
        raise ValueError(f"not an s3://<bucket>/<key> location: {location!r}")
    return bucket, key


class LetterStore:
    """Whole envelopes too large for their queue, one S3 object each, keyed `<consumer>/<date>/<uuid>.json`
    (the consumer prefix lets each function's policy allow PutObject on its own letters only)."""

    def __init__(self, s3: Any, bucket: str, backoff: Backoff | None = None):
        self._s3 = s3
        self.bucket = bucket
        self._backoff = backoff or Backoff(max_attempts=4)
        self.stats = CallStats()

    def put(self, letter: DeadLetter, body: str) -> str:
        """Store `body` (the letter's whole envelope); return its location (raises GaveUp)."""
        if not self.bucket:
            raise GaveUp(Failure(Fault.SYSTEMIC, "DeadLetterBucketNotConfigured",
                                 "DEAD_LETTER_BUCKET is not set", "PutObject"), 0)
        key = f"{letter.consumer}/{letter.failed_at.strftime('%Y-%m-%d')}/{uuid.uuid4()}.json"
        retry_call(lambda: self._s3.put_object(Bucket=self.bucket, Key=key, Body=body.encode("utf-8"),
                                               ContentType="application/json"), self._backoff, self.stats)
        return s3_location(self.bucket, key)

    def get(self, location: str) -> DeadLetter:
        """The whole letter kept at `location` (raises GaveUp, or ValueError when it is no letter)."""
        bucket, key = parse_location(location)
        answer = retry_call(lambda: self._s3.get_object(Bucket=bucket, Key=key), self._backoff, self.stats)
        return DeadLetter.from_json(answer["Body"].read())

    def delete(self, location: str) -> None:
        """Remove the object at `location` (raises GaveUp)."""
        bucket, key = parse_location(location)
        retry_call(lambda: self._s3.delete_object(Bucket=bucket, Key=key), self._backoff, self.stats)


@dataclass
class LetterDelivery:
    """What `DeadLetterQueue.send` did: the letters stored, and those it could not store, with why."""

    stored: list[DeadLetter] = field(default_factory=list)
    failed: list[tuple[DeadLetter, Failure]] = field(default_factory=list)


@dataclass(frozen=True)
class _Entry:
    index: int  # the letter's position in `send`
    letter: DeadLetter
    body: str

    @property
    def size(self) -> int:
        return len(self.body.encode("utf-8"))


class DeadLetterQueue:
    """Sends dead letters to one SQS queue, sized by the queue's limit, oversized envelopes through S3."""

    def __init__(self, sqs: Any, queue_url: str, store: LetterStore | None = None, backoff: Backoff | None = None):
        self._sqs = sqs
        self.queue_url = queue_url
        self._store = store or LetterStore(None, "")
        self._backoff = backoff or Backoff(max_attempts=4)
        self._stats = CallStats()

    @property
    def stats(self) -> CallStats:
        """SQS and S3 requests made, and retries among them."""
        return self._stats + self._store.stats

    def max_message_bytes(self) -> int:
        """The queue's MaximumMessageSize (GetQueueAttributes once per process and queue, again after SQS refused
        a letter; raises GaveUp)."""
        def learn() -> int:
            answer = retry_call(lambda: self._sqs.get_queue_attributes(
                QueueUrl=self.queue_url, AttributeNames=["MaximumMessageSize"]), self._backoff, self._stats)
            return int(answer["Attributes"]["MaximumMessageSize"])

        return clients.remember("MaximumMessageSize", self.queue_url, learn)

    def send(self, letters: Sequence[DeadLetter]) -> LetterDelivery:
        """Store every letter it can; report the ones it could not (the caller must not drop them)."""
        delivery = LetterDelivery()
        if not letters:
            return delivery
        try:
            limit = self.max_message_bytes()
        except GaveUp as gave_up:
            delivery.failed.extend((letter, gave_up.failure) for letter in letters)
            return delivery
        entries: list[_Entry] = []
        for index, letter in enumerate(letters):
            entry = _Entry(index, letter, letter.to_json())
            if entry.size > limit:
                try:
                    entry = _Entry(index, letter, letter.pointing_to(self._store.put(letter, entry.body)).to_json())
                except GaveUp as gave_up:
                    delivery.failed.append((letter, gave_up.failure))
                    continue
            entries.append(entry)

        def send_batch(batch: list[_Entry]) -> list[tuple[_Entry, Failure]]:
            answer = self._sqs.send_message_batch(QueueUrl=self.queue_url, Entries=[
                {"Id": str(index), "MessageBody": entry.body} for index, entry in enumerate(batch)])
            return [(batch[int(failed["Id"])], entry_failure(
                str(failed.get("Code", "")), str(failed.get("Message", "")), "SendMessageBatch",
                sender_fault=bool(failed.get("SenderFault")))) for failed in answer.get("Failed", [])]

        given_up = retry_pending(entries, send_batch, self._backoff, self._stats,
                                 requests=lambda pending: batches(pending, limit))
        if any(gave_up.failure.fault is Fault.ITEM for gave_up in given_up):
            # e.g. "Message must be shorter than …": the queue's limit may have been lowered since this process
            # learned it; the delivery Lambda retries learns it again.
            clients.forget("MaximumMessageSize", self.queue_url)
        not_stored = {gave_up.item.index for gave_up in given_up}
        delivery.failed.extend((gave_up.item.letter, gave_up.failure) for gave_up in given_up)
        delivery.stored.extend(entry.letter for entry in entries if entry.index not in not_stored)
        return delivery


def batches(entries: list[_Entry], limit: int) -> list[list[_Entry]]:
    """Consecutive groups of ≤ 10 entries whose bodies sum to ≤ `limit` bytes: one SendMessageBatch each."""
    groups: list[list[_Entry]] = []
    current: list[_Entry] = []
    size = 0
    for entry in entries:
        if current and (len(current) == SQS_BATCH_LIMIT or size + entry.size > limit):
            groups.append(current)
            current, size = [], 0
        current.append(entry)
        size += entry.size
    if current:
        groups.append(current)
    return groups
