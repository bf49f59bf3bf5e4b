"""Exact money: the total of an order's line items as a Decimal, and what DynamoDB can store.

Decimal's default context keeps 28 digits and rounds silently; totals here are computed in a wide
context that traps inexact results, so a total is either exact or an error, never a rounded number.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Context, Decimal, Inexact

from chalicelib.field_errors import must_be, shown

# DynamoDB numbers: up to 38 significant digits, magnitude from 1E-130 to 9.99...E+125.
MAX_SIGNIFICANT_DIGITS = 38
MIN_EXPONENT = -130
MAX_EXPONENT = 125

TOTAL_RULE = f"lines whose exact total DynamoDB can store (at most {MAX_SIGNIFICANT_DIGITS} significant digits)"

# Wide enough for any sum of products of storable numbers (exponents span about 512 digits).
_EXACT = Context(prec=1200, Emax=999_999, Emin=-999_999, traps=[Inexact])


class UnstorableTotal(ValueError):
    """The exact total cannot be stored as a DynamoDB number."""


@dataclass(frozen=True)
class LineItem:
    """One line of an order: `quantity` units of `sku` at `unit_price` each."""

    sku: str
    quantity: int
    unit_price: Decimal

    def as_item(self) -> dict[str, object]:
        """The stored/answered shape `{sku, quantity, unit_price}`."""
        return {"sku": self.sku, "quantity": self.quantity, "unit_price": self.unit_price}


def is_storable_number(number: Decimal | int) -> bool:
    """True when DynamoDB can hold `number` without losing a digit."""
    value = Decimal(number)
    if not value.is_finite():
        return False
    if value.is_zero():
        return True
    digits = value.normalize(_EXACT).as_tuple().digits
    return len(digits) <= MAX_SIGNIFICANT_DIGITS and MIN_EXPONENT <= value.adjusted() <= MAX_EXPONENT


def canonical(number: Decimal) -> Decimal:
    """`number` without trailing zeros (DynamoDB stores 19.990 as 19.99); zero is plain 0."""
    if number.is_zero():
        return Decimal(0)
    normal = number.normalize(_EXACT)
    exponent = normal.as_tuple().exponent
    if isinstance(exponent, int) and 0 < exponent <= MAX_SIGNIFICANT_DIGITS:
        return normal.quantize(Decimal(1), context=_EXACT)  # 100, not 1E+2
    return normal


def order_total(lines: Iterable[LineItem]) -> Decimal:
    """Σ quantity × unit_price, exactly (no items → 0); UnstorableTotal when DynamoDB cannot hold it."""
    total = Decimal(0)
    try:
        for line in lines:
            total = _EXACT.add(total, _EXACT.multiply(Decimal(line.quantity), line.unit_price))
    except Inexact:
        raise UnstorableTotal(must_be("items", TOTAL_RULE, "a total too large or too precise to compute")) from None
    total = canonical(total)
    if not is_storable_number(total):
        raise UnstorableTotal(must_be("items", TOTAL_RULE, f"a total of {shown(total)}"))
    return total
