"""Dead letters: the SPEC's envelope around an original Lambda record, and the queue that keeps them.

If the dead-letter queue itself cannot take a letter, `DeadLetterQueue.send` raises, so the calling
handler fails and Lambda delivers the batch again: nothing is dropped silently.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.backoff import Backoff
from chalicelib.clock import iso_utc, utc_now

Consumer = Literal["replication", "fanout", "orders", "ingest"]
CONSUMERS: tuple[str, ...] = ("replication", "fanout", "orders", "ingest")

SQS_BATCH_LIMIT = 10
# SQS caps one message and one SendMessageBatch request at 256 KiB (the older, smaller limit: moto's).
SQS_PAYLOAD_LIMIT = 256 * 1024


class DeadLetterQueueUnavailable(RuntimeError):
    """Dead letters could not be stored; the batch must be retried by Lambda."""


@dataclass(frozen=True)
class DeadLetter:
    """A record that a consumer gave up on, with everything needed to replay it."""

    consumer: str
    reason: str
    error: str
    attempts: int
    record: Any
    failed_at: datetime = field(default_factory=utc_now)

    def to_body(self) -> dict[str, Any]:
        """The message body as the SPEC writes it."""
        return {
            "consumer": self.consumer,
            "reason": self.reason,
            "error": self.error,
            "attempts": self.attempts,
            "failed_at": iso_utc(self.failed_at),
            "record": self.record,
        }

    def to_json(self) -> str:
        """The message body as JSON text (the record exactly as Lambda delivered it)."""
        return json.dumps(self.to_body(), separators=(",", ":"), default=str)

    @classmethod
    def from_json(cls, text: str) -> DeadLetter:
        """Parse a dead-letter message body (raises ValueError when it is not one)."""
        body = json.loads(text)
        if not isinstance(body, dict) or body.get("consumer") not in CONSUMERS or "record" not in body:
            raise ValueError("not a dead letter: needs consumer and record")
        failed_at = datetime.fromisoformat(str(body.get("failed_at", "")).replace("Z", "+00:00"))
        return cls(
            consumer=body["consumer"],
            reason=str(body.get("reason", "")),
            error=str(body.get("error", "")),
            attempts=int(body.get("attempts", 0)),
            record=body["record"],
            failed_at=failed_at,
        )


def describe_error(error: BaseException) -> str:
    """`ErrorType: message`, for the envelope's `error` field."""
    return f"{type(error).__name__}: {error}"


def sqs_batch_with_retries(request: Callable[[list[dict[str, Any]]], Any], entries: Mapping[str, dict[str, Any]],
                           backoff: Backoff) -> tuple[list[str], dict[str, str], int]:
    """Run one SQS *Batch request (≤ 10 entries by Id) until every entry is accepted or attempts run out.

    Only the entries SQS reports as failed are sent again, with backoff; a failed whole request is sent
    again too; an entry failed by the sender's fault (too large, bad receipt handle) will not improve and
    is given up at once. Returns (accepted ids, {given-up id: last error}, requests made).
    """
    pending = dict(entries)
    errors: dict[str, str] = {}
    accepted: list[str] = []
    given_up: dict[str, str] = {}
    calls = 0
    for attempt in range(1, backoff.max_attempts + 1):
        if attempt > 1:
            backoff.wait(attempt - 1)
        calls += 1
        try:
            answer = request([{"Id": key, **entry} for key, entry in pending.items()])
        except (ClientError, BotoCoreError) as error:
            errors = dict.fromkeys(pending, describe_error(error))
            continue
        for ok in answer.get("Successful", []):
            if pending.pop(ok["Id"], None) is not None:
                errors.pop(ok["Id"], None)
                accepted.append(ok["Id"])
        for failed in answer.get("Failed", []):
            key = failed.get("Id", "")
            if key not in pending:
                continue
            reported = f"{failed.get('Code')}: {failed.get('Message', '')}"
            if failed.get("SenderFault"):
                del pending[key]
                errors.pop(key, None)
                given_up[key] = reported
            else:
                errors[key] = reported
        if not pending:
            break
    given_up.update({key: errors.get(key, "not accepted") for key in pending})
    return accepted, given_up, calls


class DeadLetterQueue:
    """Sends dead letters to one SQS queue in batches, retrying entries SQS reports as failed."""

    def __init__(self, sqs: Any, queue_url: str, backoff: Backoff | None = None):
        self._sqs = sqs
        self._queue_url = queue_url
        self._backoff = backoff or Backoff(max_attempts=4)
        self.sent: list[DeadLetter] = []

    def send(self, letters: Sequence[DeadLetter]) -> None:
        """Store every letter or raise DeadLetterQueueUnavailable."""
        for chunk in _chunks([(letter, letter.to_json()) for letter in letters]):
            self._send_chunk(chunk)

    def _send_chunk(self, chunk: list[tuple[DeadLetter, str]]) -> None:
        letters = {str(index): letter for index, (letter, _) in enumerate(chunk)}
        accepted, given_up, _ = sqs_batch_with_retries(
            lambda entries: self._sqs.send_message_batch(QueueUrl=self._queue_url, Entries=entries),
            {str(index): {"MessageBody": body} for index, (_, body) in enumerate(chunk)},
            self._backoff,
        )
        self.sent.extend(letters[key] for key in accepted)
        if given_up:
            errors = "; ".join(sorted(set(given_up.values())))
            raise DeadLetterQueueUnavailable(
                f"{len(given_up)} dead letter(s) could not be sent to {self._queue_url}: {errors}"
            )


def _chunks(items: list[tuple[DeadLetter, str]]) -> list[list[tuple[DeadLetter, str]]]:
    """Groups of at most 10 entries whose bodies fit one SendMessageBatch request."""
    chunks: list[list[tuple[DeadLetter, str]]] = []
    current: list[tuple[DeadLetter, str]] = []
    size = 0
    for item in items:
        body_size = len(item[1].encode("utf-8"))
        if current and (len(current) == SQS_BATCH_LIMIT or size + body_size > SQS_PAYLOAD_LIMIT):
            chunks.append(current)
            current, size = [], 0
        current.append(item)
        size += body_size
    if current:
        chunks.append(current)
    return chunks
