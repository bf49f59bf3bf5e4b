"""The order job's decisions, from stream records to outcomes, with no AWS."""

from __future__ import annotations

from decimal import Decimal

import pytest

from chalicelib.orders.processing import OrderOutcome, decide, dispatcher, plan_order
from chalicelib.stream.dispatcher import HandlerError
from chalicelib.stream.record import StreamRecord
from tests.support.events import insert, modify, remove, stream_record

TABLE = "stream-pipeline-test-orders"


def order(**fields):
    return {"id": "o-1", "name": "n", "status": "PENDING", "created_at": "2026-11-22T10:00:00.000Z",
            "items": [{"sku": "A", "quantity": Decimal(3), "unit_price": Decimal("19.99")},
                      {"sku": "B", "quantity": Decimal(1), "unit_price": Decimal("0.10")}], **fields}


def inserted(item):
    return StreamRecord(insert(item, ("id",), table=TABLE))


def test_an_inserted_pending_order_is_processed_with_its_exact_total():
    outcome = plan_order(inserted(order()))
    assert outcome == OrderOutcome("o-1", "PROCESSED", total=Decimal("60.07"))
    assert outcome.changes("2026-11-22T10:00:01.000Z") == {
        "status": "PROCESSED", "processed_at": "2026-11-22T10:00:01.000Z", "total": Decimal("60.07")}


def test_an_order_without_items_totals_zero():
    item = order()
    del item["items"]
    assert plan_order(inserted(item)) == OrderOutcome("o-1", "PROCESSED", total=Decimal(0))
    assert plan_order(inserted(order(items=[]))).total == 0


@pytest.mark.parametrize(
    ("items", "reason"),
    [
        ("not a list", "items: must be an array, got string"),
        ([{"sku": "A", "quantity": "abc", "unit_price": Decimal(1)}],
         "items[0].quantity: must be an integer >= 1, got string"),
        ([{"sku": "A", "quantity": Decimal(1), "unit_price": Decimal("-5")}],
         "items[0].unit_price: must be a number >= 0, got -5"),
        ([{"sku": "A", "quantity": Decimal(1), "unit_price": Decimal(1)}, {"quantity": Decimal(1), "unit_price": 1}],
         "items[1].sku: required"),
        ([{"sku": "A", "quantity": Decimal(0), "unit_price": Decimal(1)}],
         "items[0].quantity: must be an integer >= 1"),
    ],
)
def test_malformed_items_make_the_order_failed_with_the_reason(items, reason):
    outcome = plan_order(inserted(order(items=items)))
    assert outcome is not None and outcome.status == "FAILED" and outcome.total is None
    assert outcome.failure_reason is not None and outcome.failure_reason.startswith(reason)
    assert outcome.changes("t") == {"status": "FAILED", "processed_at": "t", "failure_reason": outcome.failure_reason}


def test_a_total_too_large_to_store_fails_the_order():
    outcome = decide("o-1", order(items=[{"sku": "A", "quantity": Decimal("1" * 38), "unit_price": Decimal("1.5")}]))
    assert outcome.status == "FAILED"
    assert outcome.failure_reason == ("items: must be lines whose exact total DynamoDB can store (at most 38 "
                                      "significant digits), got a total of 16666666666666666666666666666666666666.5")


@pytest.mark.parametrize("status", ["PROCESSED", "FAILED", None])
def test_an_inserted_order_that_is_not_pending_is_left_alone(status):
    item = order(status=status) if status else {k: v for k, v in order().items() if k != "status"}
    assert plan_order(inserted(item)) is None


def test_an_insert_without_new_image_is_a_record_failure():
    record = StreamRecord(stream_record("INSERT", {"id": "o-1"}, table=TABLE, view_type="KEYS_ONLY"))
    with pytest.raises(HandlerError, match="NewImage"):
        plan_order(record)


def test_only_inserts_reach_the_job_so_our_own_updates_never_loop():
    # GIVEN the MODIFY our own update produces, a REMOVE, and an INSERT
    done = order(status="PROCESSED", total=Decimal("60.07"))
    report = dispatcher.dispatch([
        modify(order(), done, ("id",), table=TABLE),
        remove(done, ("id",), table=TABLE),
        insert(order(id="o-2"), ("id",), table=TABLE),
    ])
    # THEN only the INSERT produced an outcome; the others ran no handler
    assert report.failures == []
    assert [o.results for o in report.outcomes] == [(), (), (OrderOutcome("o-2", "PROCESSED", total=Decimal("60.07")),)]
