"""Reading JSON request bodies with errors that name what is wrong (never a 500), in the one wording."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from chalice import BadRequestError

from chalicelib.field_errors import json_type, must_be

BODY_RULE = "a JSON object"


def json_object(raw_body: bytes | str | None) -> dict[str, Any]:
    """Parse a request body that must be a JSON object; numbers become exact Decimals."""
    if raw_body is None or raw_body in (b"", ""):
        raise BadRequestError(must_be("body", BODY_RULE, "nothing"))
    try:
        text = raw_body.decode("utf-8") if isinstance(raw_body, bytes) else raw_body
        value = json.loads(text, parse_float=Decimal)
    except (UnicodeDecodeError, ValueError) as error:
        raise BadRequestError(must_be("body", BODY_RULE, f"invalid JSON ({error})")) from None
    except RecursionError:
        raise BadRequestError(must_be("body", BODY_RULE, "invalid JSON (nested too deeply)")) from None
    except ArithmeticError:  # decimal.InvalidOperation: an exponent Decimal cannot hold (1e9999999999999999999)
        raise BadRequestError(must_be("body", BODY_RULE, "invalid JSON (a number out of any usable range)")) from None
    if not isinstance(value, dict):
        raise BadRequestError(must_be("body", BODY_RULE, json_type(value)))
    return value
