"""Pure validation of users API input. Every error names the offending field."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from chalicelib.http_body import bounded_text, json_type

REQUIRED_FIELDS = ("email", "state", "city", "zipcode")
OPTIONAL_FIELDS = ("active",)
PATCHABLE_FIELDS = ("state", "city", "zipcode", "active")
MAX_PLACE_LENGTH = 100
MAX_EMAIL_LENGTH = 254

# One pragmatic address shape: local@domain.tld, no spaces, no second @, a dot in the domain.
_EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
                    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$")
_ZIPCODE = re.compile(r"[0-9]{5}(?:-[0-9]{4})?")


class InvalidUser(ValueError):
    """Input that cannot become a user; the message names the field."""


def normalize_email(value: Any, field: str = "email") -> str:
    """Lower-cased, trimmed email, or InvalidUser."""
    if not isinstance(value, str):
        raise InvalidUser(f"{field}: must be a string, got {json_type(value)}")
    email = value.strip().lower()
    if not email:
        raise InvalidUser(f"{field}: must not be empty")
    if len(email) > MAX_EMAIL_LENGTH or not _EMAIL.match(email) or ".." in email:
        raise InvalidUser(f"{field}: {value!r} is not an email address")
    return email


def _place(body: Mapping[str, Any], field: str) -> str:
    text = bounded_text(body[field], field, MAX_PLACE_LENGTH, InvalidUser)
    if field == "city" and "#" in text:
        raise InvalidUser("city: must not contain '#'")
    return text


def _zipcode(value: Any) -> str:
    if not isinstance(value, str):
        raise InvalidUser(f"zipcode: must be a string like \"02134\" or \"02134-1234\", got {json_type(value)}")
    if not _ZIPCODE.fullmatch(value):  # fullmatch: `$` alone would let "02134\n" through
        raise InvalidUser(f"zipcode: {value!r} must be NNNNN or NNNNN-NNNN")
    return value


def _active(value: Any) -> bool:
    if not isinstance(value, bool):
        raise InvalidUser(f"active: must be a boolean, got {json_type(value)}")
    return value


def _reject_unknown(body: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise InvalidUser(f"{', '.join(unknown)}: unknown field{'s' if len(unknown) > 1 else ''}; "
                          f"allowed: {', '.join(allowed)}")


def validate_new_user(body: Mapping[str, Any]) -> dict[str, Any]:
    """A POST /users body → the user's fields (without timestamps), or InvalidUser."""
    _reject_unknown(body, REQUIRED_FIELDS + OPTIONAL_FIELDS)
    for field in REQUIRED_FIELDS:
        if field not in body:
            raise InvalidUser(f"{field}: required")
    return {
        "email": normalize_email(body["email"]),
        "state": _place(body, "state"),
        "city": _place(body, "city"),
        "zipcode": _zipcode(body["zipcode"]),
        "active": _active(body["active"]) if "active" in body else True,
    }


def validate_user_patch(body: Mapping[str, Any]) -> dict[str, Any]:
    """A PATCH /users/{email} body → the changed fields, or InvalidUser."""
    _reject_unknown(body, PATCHABLE_FIELDS)
    if not body:
        raise InvalidUser(f"body: must contain at least one of {', '.join(PATCHABLE_FIELDS)}")
    changes: dict[str, Any] = {}
    for field in ("state", "city"):
        if field in body:
            changes[field] = _place(body, field)
    if "zipcode" in body:
        changes["zipcode"] = _zipcode(body["zipcode"])
    if "active" in body:
        changes["active"] = _active(body["active"])
    return changes
