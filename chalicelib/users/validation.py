"""Pure validation of users API input. Every error names the offending field, in `field_errors`' one wording."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from chalicelib.field_errors import bounded_text, json_type, must_be, required, shown, text_rule, unknown_fields

REQUIRED_FIELDS = ("email", "state", "city", "zipcode")
OPTIONAL_FIELDS = ("active",)
PATCHABLE_FIELDS = ("state", "city", "zipcode", "active")
MAX_PLACE_LENGTH = 100
MAX_EMAIL_LENGTH = 254

# One pragmatic address shape: local@domain.tld, no spaces, no second @, a dot in the domain.
_EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
                    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$")
_ZIPCODE = re.compile(r"[0-9]{5}(?:-[0-9]{4})?")

EMAIL_RULE = "an email address"
PLACE_RULE = text_rule(MAX_PLACE_LENGTH)
CITY_RULE = f'{PLACE_RULE} without "#"'
ZIPCODE_RULE = 'a string like "02134" or "02134-1234"'
ACTIVE_RULE = "a boolean"


class InvalidUser(ValueError):
    """Input that cannot become a user; the message names the field."""


def normalize_email(value: Any, field: str = "email") -> str:
    """Lower-cased, trimmed email, or InvalidUser."""
    if not isinstance(value, str):
        raise InvalidUser(must_be(field, EMAIL_RULE, json_type(value)))
    email = value.strip().lower()
    if len(email) > MAX_EMAIL_LENGTH or not _EMAIL.match(email) or ".." in email:
        raise InvalidUser(must_be(field, EMAIL_RULE, shown(value)))
    return email


def place(value: Any, field: str) -> str:
    """A trimmed `state` or `city` (the city without `#`, the target key's separator), or InvalidUser."""
    rule = CITY_RULE if field == "city" else PLACE_RULE
    text = bounded_text(value, field, MAX_PLACE_LENGTH, InvalidUser, rule)
    if field == "city" and "#" in text:
        raise InvalidUser(must_be(field, rule, shown(text)))
    return text


def _zipcode(value: Any) -> str:
    if not isinstance(value, str):
        raise InvalidUser(must_be("zipcode", ZIPCODE_RULE, json_type(value)))
    if not _ZIPCODE.fullmatch(value):  # fullmatch: `$` alone would let "02134\n" through
        raise InvalidUser(must_be("zipcode", ZIPCODE_RULE, shown(value)))
    return value


def _active(value: Any) -> bool:
    if not isinstance(value, bool):
        raise InvalidUser(must_be("active", ACTIVE_RULE, json_type(value)))
    return value


def _reject_unknown(body: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
    unknown = set(body) - set(allowed)
    if unknown:
        raise InvalidUser(unknown_fields(unknown, allowed))


def validate_new_user(body: Mapping[str, Any]) -> dict[str, Any]:
    """A POST /users body → the user's fields (without timestamps), or InvalidUser."""
    _reject_unknown(body, REQUIRED_FIELDS + OPTIONAL_FIELDS)
    for field in REQUIRED_FIELDS:
        if field not in body:
            raise InvalidUser(required(field))
    return {
        "email": normalize_email(body["email"]),
        "state": place(body["state"], "state"),
        "city": place(body["city"], "city"),
        "zipcode": _zipcode(body["zipcode"]),
        "active": _active(body["active"]) if "active" in body else True,
    }


def validate_user_patch(body: Mapping[str, Any]) -> dict[str, Any]:
    """A PATCH /users/{email} body → the changed fields, or InvalidUser."""
    _reject_unknown(body, PATCHABLE_FIELDS)
    if not body:
        raise InvalidUser(must_be("body", f"an object with at least one of {', '.join(PATCHABLE_FIELDS)}",
                                  "an empty object"))
    changes: dict[str, Any] = {}
    for field in ("state", "city"):
        if field in body:
            changes[field] = place(body[field], field)
    if "zipcode" in body:
        changes["zipcode"] = _zipcode(body["zipcode"])
    if "active" in body:
        changes["active"] = _active(body["active"])
    return changes
