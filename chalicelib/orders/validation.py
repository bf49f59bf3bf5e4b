"""Pure validation of orders: API bodies (JSON values) and stored items (DynamoDB values).

Every error names its field in `field_errors`' one wording, e.g. `items[2].quantity: must be an integer >= 1, got 0`.
Quantities from the API must be JSON integer literals: `2.0` is refused, as are booleans.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from chalicelib.field_errors import bounded_text, json_type, must_be, required, shown, unknown_fields
from chalicelib.orders.pricing import LineItem, UnstorableTotal, canonical, is_storable_number, order_total

ORDER_FIELDS = ("name", "items")
ITEM_FIELDS = ("sku", "quantity", "unit_price")
STATUSES = ("PENDING", "PROCESSED", "FAILED")
PENDING, PROCESSED, FAILED = STATUSES
MAX_NAME_LENGTH = 200
MAX_ITEMS = 100
MAX_SKU_LENGTH = 100
ITEMS_RULE = f"an array of at most {MAX_ITEMS} items"
QUANTITY_RULE = "an integer >= 1"
UNIT_PRICE_RULE = "a number >= 0"
STORABLE_RULE = "a number DynamoDB can store (at most 38 significant digits)"
STATUS_RULE = f"one of {', '.join(STATUSES)}"


class InvalidOrder(ValueError):
    """Input that cannot become (or be processed as) an order; the message names the field."""


def validate_new_order(body: Mapping[str, Any]) -> dict[str, Any]:
    """A POST /orders body → `{name, items}` with exact, canonical numbers, or InvalidOrder."""
    _reject_unknown(body, ORDER_FIELDS, "")
    if "name" not in body:
        raise InvalidOrder(required("name"))
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
        raise InvalidOrder(required("status"))
    if text not in STATUSES:
        raise InvalidOrder(must_be("status", STATUS_RULE, shown(text)))
    return text


def line_items(value: Any, *, from_api: bool) -> list[LineItem]:
    """An order's `items` → LineItems, or InvalidOrder naming the bad field.

    `from_api` is strict about the request's JSON (no unknown fields, at most 100 items, quantities
    written as integers); stored items come back from DynamoDB where every number is a Decimal.
    """
    if not isinstance(value, list):
        raise InvalidOrder(must_be("items", ITEMS_RULE if from_api else "an array", json_type(value)))
    if from_api and len(value) > MAX_ITEMS:
        raise InvalidOrder(must_be("items", ITEMS_RULE, f"{len(value)} items"))
    return [_line_item(item, f"items[{index}]", from_api) for index, item in enumerate(value)]


def _line_item(item: Any, where: str, from_api: bool) -> LineItem:
    if not isinstance(item, Mapping):
        raise InvalidOrder(must_be(where, "an object", json_type(item)))
    if from_api:
        _reject_unknown(item, ITEM_FIELDS, f"{where}.")
    for field in ITEM_FIELDS:
        if field not in item:
            raise InvalidOrder(required(f"{where}.{field}"))
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
    if isinstance(value, Decimal) and not from_api and value.is_finite() and value == value.to_integral_value():
        value = int(value)  # DynamoDB hands every number back as a Decimal
    if json_type(value) != "number":
        raise InvalidOrder(must_be(field, QUANTITY_RULE, json_type(value)))
    if not isinstance(value, int) or value < 1:  # 1.5, 2.0 (an API integer is written as one), 0
        raise InvalidOrder(must_be(field, QUANTITY_RULE, shown(value)))
    if not is_storable_number(value):
        raise InvalidOrder(must_be(field, STORABLE_RULE, shown(value)))
    return value


def _unit_price(value: Any, field: str) -> Decimal:
    if json_type(value) != "number":
        raise InvalidOrder(must_be(field, UNIT_PRICE_RULE, json_type(value)))
    price = Decimal(value)  # floats only come from NaN/Infinity (numbers are parsed as Decimal)
    if not price.is_finite() or price < 0:
        raise InvalidOrder(must_be(field, UNIT_PRICE_RULE, shown(value)))
    if not is_storable_number(price):
        raise InvalidOrder(must_be(field, STORABLE_RULE, shown(value)))
    return canonical(price)


def _reject_unknown(body: Mapping[str, Any], allowed: tuple[str, ...], prefix: str) -> None:
    unknown = set(body) - set(allowed)
    if unknown:
        raise InvalidOrder(unknown_fields(unknown, allowed, prefix))
