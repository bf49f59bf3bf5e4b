"""Users API validation (pure): each rule's exact wording, `<field>: must be <rule>, got <what>`."""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib.users.validation import InvalidUser, normalize_email, validate_new_user, validate_user_patch

VALID = {"email": "  Ada@Example.COM ", "state": "NY", "city": "Brooklyn", "zipcode": "02134"}
PLACE = "must be a string of 1 to 100 characters"
CITY = 'must be a string of 1 to 100 characters without "#"'
ZIPCODE = 'must be a string like "02134" or "02134-1234"'


def test_a_valid_user_is_trimmed_lower_cased_and_active_by_default():
    assert validate_new_user({**VALID, "city": "  Staten Island "}) == {
        "email": "ada@example.com", "state": "NY", "city": "Staten Island", "zipcode": "02134", "active": True}
    assert validate_new_user({**VALID, "zipcode": "02134-1234", "active": False})["zipcode"] == "02134-1234"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({k: v for k, v in VALID.items() if k != "zipcode"}, "zipcode: required"),
        ({**VALID, "nickname": "ada"}, "nickname: unknown field; allowed: email, state, city, zipcode, active"),
        ({**VALID, "b": 1, "a": 2}, "a, b: unknown fields; allowed: email, state, city, zipcode, active"),
        ({**VALID, "email": 42}, "email: must be an email address, got number"),
        ({**VALID, "email": ""}, "email: must be an email address, got an empty string"),
        ({**VALID, "email": "not-an-address"}, 'email: must be an email address, got "not-an-address"'),
        ({**VALID, "email": "a" * 250 + "@example.com"},
         "email: must be an email address, got a string of 262 characters"),
        ({**VALID, "state": ""}, f"state: {PLACE}, got an empty string"),
        ({**VALID, "state": "   "}, f"state: {PLACE}, got a blank string"),
        ({**VALID, "state": "S" * 101}, f"state: {PLACE}, got 101 characters"),
        ({**VALID, "state": ["NY"]}, f"state: {PLACE}, got array"),
        ({**VALID, "city": None}, f"city: {CITY}, got null"),
        ({**VALID, "city": "Brook#lyn"}, f'city: {CITY}, got "Brook#lyn"'),
        ({**VALID, "city": "\ud800"}, f"city: {CITY}, got invalid Unicode (an unpaired surrogate escape)"),
        ({**VALID, "zipcode": 2134}, f"zipcode: {ZIPCODE}, got number"),
        ({**VALID, "zipcode": "abc"}, f'zipcode: {ZIPCODE}, got "abc"'),
        ({**VALID, "zipcode": "02134\n"}, f'zipcode: {ZIPCODE}, got "02134\\n"'),
        ({**VALID, "active": "yes"}, "active: must be a boolean, got string"),
    ],
)
def test_each_invalid_field_is_named_in_the_one_wording(body: dict[str, Any], message: str):
    with pytest.raises(InvalidUser) as raised:
        validate_new_user(body)
    assert str(raised.value) == message


def test_the_first_error_only_is_reported():
    with pytest.raises(InvalidUser) as raised:
        validate_new_user({**VALID, "email": 1, "zipcode": 2})
    assert str(raised.value) == "email: must be an email address, got number"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "body: must be an object with at least one of state, city, zipcode, active, got an empty object"),
        ({"email": "b@example.com"}, "email: unknown field; allowed: state, city, zipcode, active"),
        ({"city": "A#B"}, f'city: {CITY}, got "A#B"'),
        ({"zipcode": 12345}, f"zipcode: {ZIPCODE}, got number"),
    ],
)
def test_an_invalid_patch_is_named_in_the_same_wording(body: dict[str, Any], message: str):
    with pytest.raises(InvalidUser) as raised:
        validate_user_patch(body)
    assert str(raised.value) == message


def test_an_email_is_trimmed_and_lower_cased():
    assert normalize_email("  Ada.Lovelace+x@Example.COM\t") == "ada.lovelace+x@example.com"
