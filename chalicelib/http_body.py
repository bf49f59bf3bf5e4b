"""Reading JSON request bodies with errors that name what is wrong (never a 500)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from chalice import BadRequestError


def json_object(raw_body: bytes | str | None) -> dict[str, Any]:
    """Parse a request body that must be a JSON object; numbers become exact Decimals."""
    if raw_body is None or raw_body in (b"", ""):
        raise BadRequestError("body: a JSON object is required")
    try:
        text = raw_body.decode("utf-8") if isinstance(raw_body, bytes) else raw_body
        value = json.loads(text, parse_float=Decimal)
    except (UnicodeDecodeError, ValueError) as error:
        raise BadRequestError(f"body: invalid JSON ({error})") from None
    except RecursionError:
        raise BadRequestError("body: invalid JSON (nested too deeply)") from None
    except ArithmeticError:  # decimal.InvalidOperation: an exponent Decimal cannot hold (1e9999999999999999999)
        raise BadRequestError("body: invalid JSON (a number out of any usable range)") from None
    if not isinstance(value, dict):
        raise BadRequestError(f"body: must be a JSON object, got {json_type(value)}")
    return value


def bounded_text(value: Any, field: str, max_length: int, error: type[Exception]) -> str:
    """`value` as a trimmed, non-empty string of at most `max_length` characters, or `error` naming `field`."""
    if not isinstance(value, str):
        raise error(f"{field}: must be a string, got {json_type(value)}")
    text = value.strip()
    if not _is_unicode_text(text):
        raise error(f"{field}: must be valid Unicode text (no unpaired surrogate escapes)")
    if not text:
        raise error(f"{field}: must not be empty")
    if len(text) > max_length:
        raise error(f"{field}: must be at most {max_length} characters, got {len(text)}")
    return text


def json_type(value: Any) -> str:
    """The JSON name of a parsed value's type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float, Decimal)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _is_unicode_text(text: str) -> bool:
    """False for strings holding lone surrogates (JSON escapes like "\\ud800"), which no store can encode."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
