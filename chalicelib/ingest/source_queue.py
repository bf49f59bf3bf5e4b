"""The queue ingest messages came from: acknowledging (deleting) the ones that are done.

Lambda names a record's queue only by ARN (`eventSourceARN`); DeleteMessageBatch needs its URL, which
GetQueueUrl returns (looked up once per queue per consumer, i.e. per invocation). Deletes go ≤ 10 per call;
entries SQS reports as failed are retried with backoff unless SQS says the sender is at fault (an expired
or foreign receipt handle will not get better). `calls` counts every SQS request.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.backoff import Backoff
from chalicelib.dead_letters import SQS_BATCH_LIMIT, describe_error, sqs_batch_with_retries


@dataclass(frozen=True)
class QueueRef:
    """A queue as its ARN names it: `arn:aws:sqs:<region>:<account>:<name>`."""

    region: str
    account: str
    name: str


def queue_of(arn: str) -> QueueRef | None:
    """The queue an SQS ARN names, or None when `arn` is not one."""
    parts = arn.split(":") if isinstance(arn, str) else []
    if len(parts) != 6 or parts[0] != "arn" or parts[2] != "sqs" or not all(parts[3:]):
        return None
    return QueueRef(region=parts[3], account=parts[4], name=parts[5])


@dataclass(frozen=True)
class Receipt:
    """A received message, as much as deleting it needs."""

    message_id: str
    receipt_handle: str
    queue_arn: str


@dataclass(frozen=True)
class DeleteFailure:
    """A message that is done but could not be deleted (it will be delivered again)."""

    message_id: str
    error: str


class SourceQueue:
    """Deletes processed messages from the queue Lambda received them from."""

    def __init__(self, sqs: Any, backoff: Backoff | None = None):
        self._sqs = sqs
        self._backoff = backoff or Backoff(max_attempts=4)
        self._urls: dict[str, str] = {}
        self.calls = 0

    def url_of(self, queue_arn: str) -> str:
        """The URL of the queue `queue_arn` names (raises ValueError or ClientError when there is none)."""
        if queue_arn not in self._urls:
            ref = queue_of(queue_arn)
            if ref is None:
                raise ValueError(f"not an SQS queue ARN: {queue_arn!r}")
            self.calls += 1
            answer = self._sqs.get_queue_url(QueueName=ref.name, QueueOwnerAWSAccountId=ref.account)
            self._urls[queue_arn] = answer["QueueUrl"]
        return self._urls[queue_arn]

    def delete(self, receipts: Sequence[Receipt]) -> list[DeleteFailure]:
        """Delete every message in `receipts`; return those that could not be deleted."""
        by_queue: dict[str, list[Receipt]] = {}
        seen: set[tuple[str, str]] = set()
        for receipt in receipts:
            if (receipt.queue_arn, receipt.receipt_handle) not in seen:
                seen.add((receipt.queue_arn, receipt.receipt_handle))
                by_queue.setdefault(receipt.queue_arn, []).append(receipt)
        failures: list[DeleteFailure] = []
        for queue_arn, group in by_queue.items():
            try:
                url = self.url_of(queue_arn)
            except (ValueError, ClientError, BotoCoreError) as error:
                failures.extend(DeleteFailure(r.message_id, describe_error(error)) for r in group)
                continue
            for start in range(0, len(group), SQS_BATCH_LIMIT):
                failures.extend(self._delete_chunk(url, group[start:start + SQS_BATCH_LIMIT]))
        return failures

    def _delete_chunk(self, url: str, chunk: list[Receipt]) -> list[DeleteFailure]:
        receipts = {str(index): receipt for index, receipt in enumerate(chunk)}
        _, given_up, calls = sqs_batch_with_retries(
            lambda entries: self._sqs.delete_message_batch(QueueUrl=url, Entries=entries),
            {key: {"ReceiptHandle": receipt.receipt_handle} for key, receipt in receipts.items()},
            self._backoff,
        )
        self.calls += calls
        return [DeleteFailure(receipts[key].message_id, error) for key, error in given_up.items()]
