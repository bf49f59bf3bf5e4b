"""The queue an SQS consumer's messages came from: acknowledging (deleting) the ones that are finished.

Lambda names a record's queue only by ARN (`eventSourceARN`); DeleteMessageBatch needs its URL, which
GetQueueUrl returns (looked up once per queue per adapter, i.e. per invocation). Deletes go ≤ 10 per
call through the retry primitive: entries SQS reports as failed are retried with backoff unless SQS says
the sender is at fault (an expired or foreign receipt handle will not get better). `stats` counts requests.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from chalicelib.backoff import Backoff
from chalicelib.dead_letters import SQS_BATCH_LIMIT
from chalicelib.faults import Failure, entry_failure
from chalicelib.retry import CallStats, GaveUp, retry_call, retry_pending


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


def receipt_of(record: Any) -> Receipt | None:
    """What deleting an SQS `record` from its queue needs, or None when the record lacks it."""
    if not isinstance(record, Mapping):
        return None
    handle, arn = record.get("receiptHandle"), record.get("eventSourceARN")
    if not isinstance(handle, str) or not handle or not isinstance(arn, str) or not arn:
        return None
    return Receipt(str(record.get("messageId", "")), handle, arn)


@dataclass(frozen=True)
class DeleteFailure:
    """A message that is finished but could not be deleted (it will be delivered again)."""

    message_id: str
    error: str


class SourceQueue:
    """Deletes finished messages from the queue Lambda received them from."""

    def __init__(self, sqs: Any, backoff: Backoff | None = None):
        self._sqs = sqs
        self._backoff = backoff or Backoff(max_attempts=4)
        self._urls: dict[str, str] = {}
        self.stats = CallStats()

    @property
    def calls(self) -> int:
        """SQS requests made."""
        return self.stats.calls

    def url_of(self, queue_arn: str) -> str:
        """The URL of the queue `queue_arn` names (raises ValueError, or GaveUp when SQS will not say)."""
        if queue_arn not in self._urls:
            ref = queue_of(queue_arn)
            if ref is None:
                raise ValueError(f"not an SQS queue ARN: {queue_arn!r}")
            answer = retry_call(lambda: self._sqs.get_queue_url(QueueName=ref.name, QueueOwnerAWSAccountId=ref.account),
                                self._backoff, self.stats)
            self._urls[queue_arn] = answer["QueueUrl"]
        return self._urls[queue_arn]

    def delete(self, records: Sequence[Any]) -> list[DeleteFailure]:
        """Delete every SQS record in `records` from its queue; return those that could not be deleted."""
        by_queue: dict[str, list[Receipt]] = {}
        seen: set[tuple[str, str]] = set()
        failures: list[DeleteFailure] = []
        for record in records:
            receipt = receipt_of(record)
            if receipt is None:  # a hand-built record: nothing to delete it by
                message_id = str(record.get("messageId", "")) if isinstance(record, Mapping) else ""
                failures.append(DeleteFailure(message_id, "record has no receiptHandle or eventSourceARN"))
            elif (receipt.queue_arn, receipt.receipt_handle) not in seen:
                seen.add((receipt.queue_arn, receipt.receipt_handle))
                by_queue.setdefault(receipt.queue_arn, []).append(receipt)
        for queue_arn, group in by_queue.items():
            try:
                url = self.url_of(queue_arn)
            except (ValueError, GaveUp) as error:
                failures.extend(DeleteFailure(r.message_id, str(error)) for r in group)
                continue
            failures.extend(self._delete_from(url, group))
        return failures

    def _delete_from(self, url: str, receipts: list[Receipt]) -> list[DeleteFailure]:
        def send(chunk: list[Receipt]) -> list[tuple[Receipt, Failure]]:
            answer = self._sqs.delete_message_batch(QueueUrl=url, Entries=[
                {"Id": str(index), "ReceiptHandle": receipt.receipt_handle} for index, receipt in enumerate(chunk)])
            return [(chunk[int(failed["Id"])], entry_failure(
                str(failed.get("Code", "")), str(failed.get("Message", "")), "DeleteMessageBatch",
                sender_fault=bool(failed.get("SenderFault")))) for failed in answer.get("Failed", [])]

        given_up = retry_pending(receipts, send, self._backoff, self.stats,
                                 requests=lambda pending: [pending[i:i + SQS_BATCH_LIMIT]
                                                           for i in range(0, len(pending), SQS_BATCH_LIMIT)])
        return [DeleteFailure(failed.item.message_id, failed.failure.text) for failed in given_up]
