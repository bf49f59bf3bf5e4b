"""Order totals are exact decimals: Σ quantity × unit_price, no float, no 28-digit rounding."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.orders.pricing import LineItem, UnstorableTotal, canonical, is_storable_number, order_total


def line(quantity: int, price: str) -> LineItem:
    return LineItem("SKU", quantity, Decimal(price))


def test_three_at_19_99_plus_one_at_0_10_is_exactly_60_07():
    total = order_total([line(3, "19.99"), line(1, "0.10")])
    assert total == Decimal("60.07") and str(total) == "60.07"


def test_point_one_plus_point_two_is_exactly_point_three():
    assert str(order_total([line(1, "0.1"), line(1, "0.2")])) == "0.3"


def test_no_items_total_zero():
    assert order_total([]) == 0 and str(order_total([])) == "0"


def test_free_items_total_zero():
    assert str(order_total([line(5, "0"), line(2, "0.00")])) == "0"


def test_totals_beyond_decimals_default_28_digits_stay_exact():
    # 37 significant digits: the default context would round this.
    total = order_total([line(10**20, "1234567890123456.7")])
    assert total == Decimal("123456789012345670000000000000000000")
    assert order_total([line(3, "0.333333333333333333333333333333333333")]) == Decimal(
        "0.999999999999999999999999999999999999")


def test_a_total_dynamodb_cannot_store_is_refused():
    with pytest.raises(UnstorableTotal, match="^items: must be lines whose exact total DynamoDB can store"):
        order_total([line(int("1" * 38), "1.5")])
    with pytest.raises(UnstorableTotal):
        order_total([line(1, "1E+125"), line(1, "1E-20")])


@pytest.mark.parametrize(("number", "storable"), [
    (Decimal(0), True), (Decimal("9" * 38), True), (Decimal("9" * 39), False), (Decimal("1E-130"), True),
    (Decimal("1E-131"), False), (Decimal("9.99E+125"), True), (Decimal("1E+126"), False), (Decimal("NaN"), False),
    (Decimal("Infinity"), False), (10**37, True),
])
def test_storable_numbers_follow_dynamodb_limits(number, storable):
    assert is_storable_number(number) is storable


@pytest.mark.parametrize(("number", "text"), [("19.990", "19.99"), ("100", "100"), ("1E+2", "100"), ("0.00", "0"),
                                              ("-0", "0"), ("0.10", "0.1")])
def test_canonical_numbers_drop_trailing_zeros_without_exponents(number, text):
    assert str(canonical(Decimal(number))) == text


prices = st.decimals(min_value=0, max_value=Decimal("999999.99"), places=2, allow_nan=False, allow_infinity=False)


@given(st.lists(st.tuples(st.integers(min_value=1, max_value=10**6), prices), max_size=100))
def test_total_equals_the_exact_rational_sum(lines):
    total = order_total([LineItem("S", q, p) for q, p in lines])
    assert Fraction(total) == sum((q * Fraction(p) for q, p in lines), Fraction(0))
