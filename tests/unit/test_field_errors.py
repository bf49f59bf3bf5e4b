"""One wording for each kind of validation error, across the users API, the orders API and ingestion."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from chalicelib.field_errors import InvalidField, bounded_text, json_type, shown
from chalicelib.ingest.messages import Rejection, parse_message
from chalicelib.orders.validation import InvalidOrder, validate_new_order
from chalicelib.users.validation import InvalidUser, validate_new_user
from tests.support.events import sqs_message

USER = {"email": "ada@example.com", "state": "NY", "city": "Brooklyn", "zipcode": "02134"}
ORDER = {"name": "Ada", "items": [{"sku": "A-1", "quantity": 1, "unit_price": 1}]}
MESSAGE = {"user_id": "u-1", "device": "pixel", "location": "Lisbon"}


def user_error(**fields: Any) -> str:
    with pytest.raises(InvalidUser) as raised:
        validate_new_user({**USER, **fields})
    return str(raised.value)


def order_error(**fields: Any) -> str:
    with pytest.raises(InvalidOrder) as raised:
        validate_new_order({**ORDER, **fields})
    return str(raised.value)


def ingest_error(**fields: Any) -> str:
    outcome = parse_message(sqs_message(json.dumps({**MESSAGE, **fields})))
    assert isinstance(outcome, Rejection)
    return outcome.reason


@pytest.mark.parametrize(
    ("kind", "errors"),
    [
        ("wrong type", [user_error(state=7), order_error(name=7), ingest_error(device=7)]),
        ("empty", [user_error(state=""), order_error(name=""), ingest_error(device="")]),
        ("blank", [user_error(state=" "), order_error(name=" "), ingest_error(device=" ")]),
        ("too long", [user_error(state="s" * 999), order_error(name="s" * 999), ingest_error(device="s" * 999)]),
    ],
)
def test_a_text_field_is_refused_in_the_same_words_by_users_orders_and_ingest(kind: str, errors: list[str]):
    # THEN the three differ only in the field's name and length limit
    shapes = {error.split(":", 1)[1].replace("100", "N").replace("200", "N").replace("256", "N") for error in errors}
    assert len(shapes) == 1, errors
    assert errors[0].startswith("state: must be a string of 1 to 100 characters, got "), errors


def test_a_missing_field_reads_the_same_everywhere():
    users = {k: v for k, v in USER.items() if k != "city"}
    with pytest.raises(InvalidUser, match="^city: required$"):
        validate_new_user(users)
    with pytest.raises(InvalidOrder, match="^name: required$"):
        validate_new_order({"items": []})
    outcome = parse_message(sqs_message(json.dumps({"user_id": "u", "device": "d"})))
    assert isinstance(outcome, Rejection) and outcome.reason == "location: required"


def test_an_unknown_field_reads_the_same_in_both_apis():
    assert user_error(colour="red") == "colour: unknown field; allowed: email, state, city, zipcode, active"
    assert order_error(colour="red") == "colour: unknown field; allowed: name, items"


@pytest.mark.parametrize(("name", "shown_as"), [
    ("", '""'), (" ", '" "'), ("a: b", '"a: b"'), ("x, y", '"x, y"'), ("\ud800", '"\\ud800"'),
    ("k" * 41, "a name of 41 characters"),
])
def test_an_unknown_field_of_any_name_is_named_before_the_colon(name, shown_as):
    # Found by the reliability suite: `{"": 1}` answered ": unknown field; ..." (a message naming nothing).
    assert user_error(**{name: 1}) == f"{shown_as}: unknown field; allowed: email, state, city, zipcode, active"


def test_many_unknown_fields_are_listed_up_to_a_limit():
    message = order_error(**{f"f{n:02d}": n for n in range(25)})
    assert message.startswith("f00, f01, f02, f03, f04, f05, f06, f07, f08, f09 and 15 more: unknown fields;")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, "0"), (Decimal("-0.01"), "-0.01"), (Decimal("1E+200"), "1E+200"), (True, "true"), (None, "null"),
        ("DONE", '"DONE"'), ('say "hi"', '"say \\"hi\\""'), ("Zürich", '"Zürich"'), ("", "an empty string"),
        (" \t", "a blank string"), ("x" * 41, "a string of 41 characters"),
        (int("9" * 41), "a number of 41 characters"),
        (float("nan"), "NaN"), (float("-inf"), "-Infinity"), ([1], "array"), ({"a": 1}, "object"),
    ],
)
def test_a_wrong_value_is_shown_as_json_and_a_long_one_described(value: Any, expected: str):
    assert shown(value) == expected


def test_json_type_names_what_json_calls_it():
    assert [json_type(v) for v in (None, True, 1, Decimal(1), 1.5, "s", [], {})] == [
        "null", "boolean", "number", "number", "number", "string", "array", "object"]


def test_bounded_text_trims_counts_code_points_and_raises_the_given_error():
    assert bounded_text("  ☃☃ ", "f", 2) == "☃☃"
    with pytest.raises(InvalidField, match=r"^f: must be a string of 1 to 2 characters, got 3 characters$"):
        bounded_text("abc", "f", 2)
    with pytest.raises(InvalidOrder, match=r"^f: must be a code, got a blank string$"):
        bounded_text("  ", "f", 2, InvalidOrder, rule="a code")
