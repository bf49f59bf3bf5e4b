"""Orders validation: what a POST body may hold, and every way it can be wrong (message names the field)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from chalicelib.orders.validation import InvalidOrder, line_items, parse_status, validate_new_order

ITEM = {"sku": "SKU-1", "quantity": 3, "unit_price": Decimal("19.99")}


def body(**fields: Any) -> dict[str, Any]:
    return {"name": "Ada's order", "items": [dict(ITEM)], **fields}


def parsed(text: str) -> Any:
    """A body as the API parses it: JSON with every non-integer number as a Decimal."""
    return json.loads(text, parse_float=Decimal)


def test_a_valid_body_keeps_exact_numbers_and_trims_text():
    # GIVEN a body with padded text and a price written with a trailing zero
    order = validate_new_order(parsed('{"name": "  Ada  ", "items": [{"sku": " A ", "quantity": 3, '
                                      '"unit_price": 19.990}]}'))
    # THEN the text is trimmed and the price is exact (and canonical, as DynamoDB stores it)
    assert order == {"name": "Ada", "items": [{"sku": "A", "quantity": 3, "unit_price": Decimal("19.99")}]}
    assert str(order["items"][0]["unit_price"]) == "19.99"


def test_items_are_optional_and_may_be_empty():
    assert validate_new_order({"name": "n"}) == {"name": "n", "items": []}
    assert validate_new_order({"name": "n", "items": []}) == {"name": "n", "items": []}


@pytest.mark.parametrize(("price", "stored"), [(0, "0"), (Decimal("0.00"), "0"), (Decimal("100.00"), "100"),
                                                (5, "5"), (Decimal("0.10"), "0.1"), (Decimal("1E+2"), "100")])
def test_prices_are_stored_in_canonical_plain_form(price, stored):
    order = validate_new_order(body(items=[{**ITEM, "unit_price": price}]))
    assert str(order["items"][0]["unit_price"]) == stored


def test_limits_are_inclusive():
    assert validate_new_order(body(name="n" * 200))["name"] == "n" * 200
    assert len(validate_new_order(body(items=[dict(ITEM)] * 100))["items"]) == 100
    assert validate_new_order(body(items=[{**ITEM, "sku": "s" * 100}]))["items"][0]["sku"] == "s" * 100
    assert validate_new_order(body(items=[{**ITEM, "quantity": 1, "unit_price": 0}]))["items"][0]["quantity"] == 1


@pytest.mark.parametrize(
    ("order", "message"),
    [
        ({"items": []}, "name: required"),
        (body(name=""), "name: must be a string of 1 to 200 characters, got an empty string"),
        (body(name="   "), "name: must be a string of 1 to 200 characters, got a blank string"),
        (body(name="n" * 201), "name: must be a string of 1 to 200 characters, got 201 characters"),
        (body(name=42), "name: must be a string of 1 to 200 characters, got number"),
        (body(name=None), "name: must be a string of 1 to 200 characters, got null"),
        (body(name=["a"]), "name: must be a string of 1 to 200 characters, got array"),
        (body(color="red"), "color: unknown field; allowed: name, items"),
        (body(items={"sku": "A"}), "items: must be an array of at most 100 items, got object"),
        (body(items="A"), "items: must be an array of at most 100 items, got string"),
        (body(items=None), "items: must be an array of at most 100 items, got null"),
        (body(items=[dict(ITEM)] * 101), "items: must be an array of at most 100 items, got 101 items"),
        (body(items=[dict(ITEM), "A"]), "items[1]: must be an object, got string"),
        (body(items=[dict(ITEM), dict(ITEM), [1]]), "items[2]: must be an object, got array"),
        (body(items=[{**ITEM, "colour": "red"}]), "items[0].colour: unknown field; allowed: sku, quantity, unit_price"),
        (body(items=[{"quantity": 1, "unit_price": 1}]), "items[0].sku: required"),
        (body(items=[{"sku": "A", "unit_price": 1}]), "items[0].quantity: required"),
        (body(items=[{"sku": "A", "quantity": 1}]), "items[0].unit_price: required"),
        (body(items=[{**ITEM, "sku": ""}]),
         "items[0].sku: must be a string of 1 to 100 characters, got an empty string"),
        (body(items=[{**ITEM, "sku": "  "}]),
         "items[0].sku: must be a string of 1 to 100 characters, got a blank string"),
        (body(items=[{**ITEM, "sku": 7}]), "items[0].sku: must be a string of 1 to 100 characters, got number"),
        (body(items=[{**ITEM, "sku": "s" * 101}]),
         "items[0].sku: must be a string of 1 to 100 characters, got 101 characters"),
        (body(items=[dict(ITEM), dict(ITEM), {**ITEM, "quantity": 0}]),
         "items[2].quantity: must be an integer >= 1, got 0"),
        (body(items=[{**ITEM, "quantity": -1}]), "items[0].quantity: must be an integer >= 1, got -1"),
        (body(items=[{**ITEM, "quantity": Decimal("1.5")}]), "items[0].quantity: must be an integer >= 1, got 1.5"),
        # JSON 2.0 is not an integer literal: refused rather than silently truncated or coerced.
        (body(items=[{**ITEM, "quantity": Decimal("2.0")}]), "items[0].quantity: must be an integer >= 1, got 2.0"),
        (body(items=[{**ITEM, "quantity": True}]), "items[0].quantity: must be an integer >= 1, got boolean"),
        (body(items=[{**ITEM, "quantity": "3"}]), "items[0].quantity: must be an integer >= 1, got string"),
        (body(items=[{**ITEM, "quantity": None}]), "items[0].quantity: must be an integer >= 1, got null"),
        (body(items=[{**ITEM, "quantity": int("1" * 39)}]),
         f"items[0].quantity: must be a number DynamoDB can store (at most 38 significant digits), got {'1' * 39}"),
        (body(items=[{**ITEM, "unit_price": Decimal("-0.01")}]),
         "items[0].unit_price: must be a number >= 0, got -0.01"),
        (body(items=[{**ITEM, "unit_price": -1}]), "items[0].unit_price: must be a number >= 0, got -1"),
        (body(items=[{**ITEM, "unit_price": "19.99"}]), "items[0].unit_price: must be a number >= 0, got string"),
        (body(items=[{**ITEM, "unit_price": False}]), "items[0].unit_price: must be a number >= 0, got boolean"),
        (body(items=[{**ITEM, "unit_price": float("nan")}]), "items[0].unit_price: must be a number >= 0, got NaN"),
        (body(items=[{**ITEM, "unit_price": float("inf")}]),
         "items[0].unit_price: must be a number >= 0, got Infinity"),
        (body(items=[{**ITEM, "unit_price": {"amount": 1}}]), "items[0].unit_price: must be a number >= 0, got object"),
        (body(items=[{**ITEM, "unit_price": Decimal("1." + "1" * 40)}]),
         "items[0].unit_price: must be a number DynamoDB can store (at most 38 significant digits), "
         "got a number of 42 characters"),
        (body(items=[{**ITEM, "unit_price": Decimal("1E+200")}]),
         "items[0].unit_price: must be a number DynamoDB can store (at most 38 significant digits), got 1E+200"),
        # each line is storable, but the exact total needs 39 digits
        (body(items=[{**ITEM, "quantity": int("1" * 38), "unit_price": Decimal("1.5")}]),
         "items: must be lines whose exact total DynamoDB can store (at most 38 significant digits), "
         "got a total of 16666666666666666666666666666666666666.5"),
    ],
)
def test_every_invalid_body_is_refused_naming_the_field(order, message):
    with pytest.raises(InvalidOrder) as raised:
        validate_new_order(order)
    assert str(raised.value) == message


def test_stored_items_accept_integral_decimals_and_ignore_extra_attributes():
    # GIVEN items as DynamoDB hands them back: every number a Decimal, maybe with other attributes
    lines = line_items([{"sku": "A", "quantity": Decimal("3"), "unit_price": Decimal("19.99"), "note": "x"}],
                       from_api=False)
    assert [(line.sku, line.quantity, line.unit_price) for line in lines] == [("A", 3, Decimal("19.99"))]
    assert isinstance(lines[0].quantity, int)


@pytest.mark.parametrize(
    ("items", "message"),
    [
        ("abc", "items: must be an array, got string"),
        ([{"sku": "A", "quantity": "abc", "unit_price": Decimal(1)}],
         "items[0].quantity: must be an integer >= 1, got string"),
        ([{"sku": "A", "quantity": Decimal("2.5"), "unit_price": Decimal(1)}], "items[0].quantity"),
        ([{"sku": "A", "quantity": Decimal(1), "unit_price": Decimal(-1)}], "items[0].unit_price: must be a number"),
        ([{"quantity": Decimal(1), "unit_price": Decimal(1)}], "items[0].sku: required"),
        ([b"bytes"], "items[0]: must be an object"),
    ],
)
def test_stored_items_that_cannot_be_priced_are_refused(items, message):
    with pytest.raises(InvalidOrder) as raised:
        line_items(items, from_api=False)
    assert str(raised.value).startswith(message)


@pytest.mark.parametrize("status", ["PENDING", "PROCESSED", "FAILED"])
def test_known_statuses_are_accepted(status):
    assert parse_status(status) == status


@pytest.mark.parametrize("status", [None, "", "pending", "DONE", "PENDING "])
def test_other_statuses_are_refused_naming_status(status):
    with pytest.raises(InvalidOrder, match=r"^status: "):
        parse_status(status)
