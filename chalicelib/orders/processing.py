"""The order job on the orders stream: an INSERT of a PENDING order becomes PROCESSED (with its exact
total) or FAILED (with the reason), by one UpdateItem conditional on the order still being PENDING.

The decision (`plan_order`) is pure; `OrderProcessor` applies it. A redelivered batch finds the
orders no longer PENDING, so it changes nothing; our own MODIFY records are ignored, so nothing loops.
Infrastructure errors are retried with backoff, then dead-lettered; the handler raises only when the
dead-letter queue itself cannot take them (Lambda then retries the batch, and nothing is lost).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.backoff import Backoff
from chalicelib.clock import Clock, iso_utc, utc_now
from chalicelib.dead_letters import DeadLetter, DeadLetterQueue, describe_error
from chalicelib.orders.pricing import UnstorableTotal, order_total
from chalicelib.orders.repository import OrdersRepository
from chalicelib.orders.validation import FAILED, PENDING, PROCESSED, InvalidOrder, line_items
from chalicelib.stream.dispatcher import HandlerError, StreamDispatcher
from chalicelib.stream.record import StreamRecord

logger = logging.getLogger(__name__)

CONSUMER = "orders"


@dataclass(frozen=True)
class OrderOutcome:
    """What the job decided for one order: PROCESSED with `total`, or FAILED with `failure_reason`."""

    order_id: str
    status: str
    total: Decimal | None = None
    failure_reason: str | None = None

    def changes(self, processed_at: str) -> dict[str, Any]:
        """The attributes to SET on the order."""
        changes: dict[str, Any] = {"status": self.status, "processed_at": processed_at}
        if self.total is not None:
            changes["total"] = self.total
        if self.failure_reason is not None:
            changes["failure_reason"] = self.failure_reason
        return changes


def decide(order_id: str, order: dict[str, Any]) -> OrderOutcome:
    """PROCESSED with Σ quantity × unit_price, or FAILED naming what is wrong with the stored items."""
    try:
        total = order_total(line_items(order.get("items", []), from_api=False))
    except (InvalidOrder, UnstorableTotal) as error:
        return OrderOutcome(order_id, FAILED, failure_reason=str(error))
    return OrderOutcome(order_id, PROCESSED, total=total)


def plan_order(record: StreamRecord) -> OrderOutcome | None:
    """The outcome for an INSERT record, or None when the inserted order is not PENDING."""
    order = record.new
    if order is None:
        raise HandlerError("INSERT record has no NewImage (the orders stream must include new images)")
    order_id = record.keys.get("id", order.get("id"))
    if not isinstance(order_id, str) or not order_id:
        raise HandlerError("INSERT record has no string id key")
    if order.get("status") != PENDING:
        return None
    return decide(order_id, order)


dispatcher = StreamDispatcher(CONSUMER)
dispatcher.on_insert(plan_order)  # MODIFY (our own updates) and REMOVE have no handler: ignored


@dataclass
class BatchSummary:
    """Counts for one batch, for logs and tests."""

    processed: int = 0
    failed: int = 0
    unchanged: int = 0  # no longer PENDING (a redelivery), or gone
    ignored: int = 0  # not an INSERT of a PENDING order
    dead_lettered: int = 0
    letters: list[DeadLetter] = field(default_factory=list)


class OrderProcessor:
    """Applies a batch of orders-stream records to ORDERS_TABLE; what cannot be applied is dead-lettered."""

    def __init__(self, repository: OrdersRepository, dead_letters: DeadLetterQueue, clock: Clock = utc_now,
                 backoff: Backoff | None = None):
        self._repository = repository
        self._dead_letters = dead_letters
        self._clock = clock
        self._backoff = backoff or Backoff(max_attempts=4)
        self.last = BatchSummary()

    @property
    def calls(self) -> int:
        """DynamoDB requests made so far."""
        return self._repository.calls

    def handle(self, raw_records: Iterable[Any]) -> dict[str, list[Any]]:
        """Process one Lambda batch in stream order. Raises only when dead letters cannot be stored."""
        records = list(raw_records)
        report = dispatcher.dispatch(records)
        summary = BatchSummary(ignored=len(report.skipped))
        summary.letters.extend(
            DeadLetter(CONSUMER, failure.reason, describe_error(failure.error), 1, failure.raw)
            for failure in report.failures
        )
        for outcome in report.outcomes:
            planned = outcome.results[0] if outcome.results else None  # MODIFY/REMOVE: no handler ran
            if planned is None:
                summary.ignored += 1
                continue
            self._apply(planned, outcome.record, summary)
        self.last = summary
        if summary.letters:
            summary.dead_lettered = len(summary.letters)
            logger.warning("orders: %d record(s) dead-lettered", summary.dead_lettered)
            self._dead_letters.send(summary.letters)  # raises if the DLQ is unavailable: Lambda retries
        logger.info("orders: %d record(s): %d processed, %d failed, %d unchanged, %d ignored, %d dead-lettered",
                    len(records), summary.processed, summary.failed, summary.unchanged, summary.ignored,
                    summary.dead_lettered)
        # Failures are in the DLQ, so nothing is reported back: Lambda must not replay them.
        return {"batchItemFailures": []}

    def _apply(self, planned: OrderOutcome, record: StreamRecord, summary: BatchSummary) -> None:
        last_error: BaseException = RuntimeError("no attempt made")
        attempts = self._backoff.max_attempts
        for attempt in range(1, attempts + 1):
            if attempt > 1:
                self._backoff.wait(attempt - 1)
            try:
                changed = self._repository.transition(planned.order_id, PENDING,
                                                      planned.changes(iso_utc(self._clock())))
            except (ClientError, BotoCoreError) as error:  # throttling, outages: retried, then dead-lettered
                last_error = error
                continue
            if not changed:
                summary.unchanged += 1
            elif planned.status == PROCESSED:
                summary.processed += 1
            else:
                summary.failed += 1
            return
        summary.letters.append(DeadLetter(CONSUMER, f"order {planned.order_id} could not be updated after retries",
                                          describe_error(last_error), attempts, record.raw))
