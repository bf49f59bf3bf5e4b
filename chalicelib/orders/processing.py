"""The order job on the orders stream: an INSERT of a PENDING order becomes PROCESSED (with its exact
total) or FAILED (with the reason), by one UpdateItem conditional on the order still being PENDING.

The decision (`plan_order`) is pure; `OrderProcessor` applies it. A redelivered batch finds the
orders no longer PENDING, so it changes nothing; our own MODIFY records are ignored, so nothing loops.
Throttling and service errors are retried with backoff, then dead-lettered; an order DynamoDB refuses
(ValidationException) is dead-lettered at once; a systemic fault (access denied, no such table) is never
retried and stops the batch (see `OrderProcessor.process`). The consumer runtime stores the letters.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import partial
from typing import Any

from chalicelib.backoff import Backoff
from chalicelib.clock import Clock, iso_utc, utc_now
from chalicelib.consumer_runtime import Outcome
from chalicelib.dead_letters import describe_error
from chalicelib.faults import Failure, Fault
from chalicelib.orders.pricing import UnstorableTotal, order_total
from chalicelib.orders.repository import OrdersRepository
from chalicelib.orders.validation import FAILED, PENDING, PROCESSED, InvalidOrder, line_items
from chalicelib.retry import CallStats, GaveUp, retry_call
from chalicelib.stream.dispatcher import HandlerError, StreamDispatcher
from chalicelib.stream.record import StreamRecord

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


class OrderProcessor:
    """Applies a batch of orders-stream records to ORDERS_TABLE; returns what happened (letters included)."""

    def __init__(self, repository: OrdersRepository, clock: Clock = utc_now, backoff: Backoff | None = None):
        self._repository = repository
        self._clock = clock
        self._backoff = backoff or Backoff(max_attempts=4)
        self.stats = CallStats()

    @property
    def calls(self) -> int:
        """DynamoDB requests made so far."""
        return self._repository.calls

    def process(self, raw_records: Sequence[Any]) -> Outcome:
        """Process one batch in stream order: one conditional UpdateItem per PENDING order.

        A systemic fault stops the batch at the order that met it: the orders after it are dead-lettered
        with the same reason without being tried (attempts 0), one call instead of one per order.
        """
        outcome = Outcome(CONSUMER, list(raw_records))
        report = dispatcher.dispatch(outcome.records)
        for rejected in report.failures:
            outcome.reject(rejected.raw, rejected.reason, describe_error(rejected.error))
        counts = dict.fromkeys((PROCESSED, FAILED), 0)
        before = self.stats.copy()
        stopped_by: Failure | None = None
        for planned in report.outcomes:
            outcome.saw_created(planned.record.created_at)
            order = planned.results[0] if planned.results else None  # MODIFY/REMOVE: no handler ran
            if order is None:
                outcome.skipped += 1
                continue
            if stopped_by is not None:
                outcome.dead_letter(planned.record.raw, stopped_by, 0)
                continue
            try:
                changed = retry_call(partial(self._transition, order), self._backoff, self.stats)
            except GaveUp as gave_up:
                outcome.dead_letter(planned.record.raw, gave_up.failure, gave_up.attempts)
                if gave_up.failure.fault is Fault.SYSTEMIC:
                    stopped_by = gave_up.failure
                continue
            if changed:
                counts[order.status] += 1
                outcome.applied += 1
            else:  # no longer PENDING (a redelivery) or gone: nothing to do
                outcome.skipped += 1
        outcome.count(self.stats - before)
        outcome.details.update({"processed": counts[PROCESSED], "failed": counts[FAILED]})
        return outcome

    def _transition(self, order: OrderOutcome) -> bool:
        """One conditional UpdateItem: False when the order is no longer PENDING (or gone)."""
        return self._repository.transition(order.order_id, PENDING, order.changes(iso_utc(self._clock())))
