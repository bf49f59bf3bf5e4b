"""Pure validation of orders: API bodies (JSON values) and stored items (DynamoDB values).

Every error names its field, e.g. `items[2].quantity: must be an integer >= 1, got 0`.
Quantities from the API must be JSON integer literals: `2.0` is refused, as are booleans.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from chalicelib.http_body import bounded_text, json_type
from chalicelib.orders.pricing import LineItem, UnstorableTotal, canonical, is_storable_number, order_total

ORDER_FIELDS = ("name", "items")
ITEM_FIELDS = ("sku", "quantity", "unit_price")
STATUSES = ("PENDING", "PROCESSED", "FAILED")
PENDING, PROCESSED, FAILED = STATUSES
MAX_NAME_LENGTH = 200
MAX_ITEMS = 100
MAX_SKU_LENGTH = 100


class InvalidOrder(ValueError):
    """Input that cannot become (or be processed as) an order; the message names the field."""


def validate_new_order(body: Mapping[str, Any]) -> dict[str, Any]:
    """A POST /orders body → `{name, items}` with exact, canonical numbers, or InvalidOrder."""
    _reject_unknown(body, ORDER_FIELDS, "")
    if "name" not in body:
        raise InvalidOrder("name: required")
    name = _name(body["name"])
    lines = line_items(body.get("items", []), from_api=True)
    try:
        order_total(lines)  # refuse at the door an order whose total could never be stored
    except UnstorableTotal as error:
        raise InvalidOrder(str(error)) from None
    return {"name": name, "items": [line.as_item() for line in lines]}


def parse_status(text: str | None) -> str:
    """The `status` query parameter: one of PENDING, PROCESSED, FAILED."""
    if text is None or text == "":
        raise InvalidOrder(f"status: query parameter is required, one of {', '.join(STATUSES)}")
    if text not in STATUSES:
        raise InvalidOrder(f"status: must be one of {', '.join(STATUSES)}, got {text!r}")
    return text


def line_items(value: Any, *, from_api: bool) -> list[LineItem]:
    """An order's `items` → LineItems, or InvalidOrder naming the bad field.

    `from_api` is strict about the request's JSON (no unknown fields, at most 100 items, quantities
    written as integers); stored items come back from DynamoDB where every number is a Decimal.
    """
    if not isinstance(value, list):
        raise InvalidOrder(f"items: must be an array, got {json_type(value)}")
    if from_api and len(value) > MAX_ITEMS:
        raise InvalidOrder(f"items: must have at most {MAX_ITEMS} items, got {len(value)}")
    return [_line_item(item, f"items[{index}]", from_api) for index, item in enumerate(value)]


def _line_item(item: Any, where: str, from_api: bool) -> LineItem:
    if not isinstance(item, Mapping):
        raise InvalidOrder(f"{where}: must be an object, got {json_type(item)}")
    if from_api:
        _reject_unknown(item, ITEM_FIELDS, f"{where}.")
    for field in ITEM_FIELDS:
        if field not in item:
            raise InvalidOrder(f"{where}.{field}: required")
    return LineItem(
        sku=_sku(item["sku"], f"{where}.sku"),
        quantity=_quantity(item["quantity"], f"{where}.quantity", from_api),
        unit_price=_unit_price(item["unit_price"], f"{where}.unit_price"),
    )


def _name(value: Any) -> str:
    return bounded_text(value, "name", MAX_NAME_LENGTH, InvalidOrder)


def _sku(value: Any, field: str) -> str:
    return bounded_text(value, field, MAX_SKU_LENGTH, InvalidOrder)


def _quantity(value: Any, field: str, from_api: bool) -> int:
    problem = f"{field}: must be an integer >= 1, got {_shown(value)}"
    if isinstance(value, bool):
        raise InvalidOrder(problem)
    if isinstance(value, Decimal) and not from_api and value.is_finite() and value == value.to_integral_value():
        value = int(value)  # DynamoDB hands every number back as a Decimal
    if not isinstance(value, int) or value < 1:
        raise InvalidOrder(problem)
    if not is_storable_number(value):
        raise InvalidOrder(f"{field}: must have at most 38 significant digits, got {_shown(value)}")
    return value


def _unit_price(value: Any, field: str) -> Decimal:
    problem = f"{field}: must be a number >= 0, got {_shown(value)}"
    # bool is an int, and floats only come from NaN/Infinity (numbers are parsed as Decimal).
    if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
        raise InvalidOrder(problem)
    price = Decimal(value)
    if not price.is_finite() or price < 0:
        raise InvalidOrder(problem)
    if not is_storable_number(price):
        raise InvalidOrder(f"{field}: must have at most 38 significant digits and fit a stored number, got {value}")
    return canonical(price)


def _shown(value: Any) -> str:
    """A short, JSON-flavoured rendering of a bad value for an error message."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value) if len(value) <= 40 else f"a string of {len(value)} characters"
    if isinstance(value, (int, Decimal, float)):
        return str(value) if len(str(value)) <= 60 else "a number too long to show"
    return json_type(value)


def _reject_unknown(body: Mapping[str, Any], allowed: tuple[str, ...], prefix: str) -> None:
    unknown = sorted(str(name) for name in set(body) - set(allowed))
    if unknown:
        names = ", ".join(f"{prefix}{name}" for name in unknown)
        raise InvalidOrder(f"{names}: unknown field{'s' if len(unknown) > 1 else ''}; allowed: {', '.join(allowed)}")
