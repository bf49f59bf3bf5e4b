"""Opaque pagination tokens: DynamoDB's LastEvaluatedKey, bound to the query that produced it."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any

from chalice import BadRequestError

from chalicelib.field_errors import must_be, shown

DEFAULT_LIMIT = 50
MAX_LIMIT = 100
LIMIT_RULE = f"an integer from 1 to {MAX_LIMIT}"
TOKEN_RULE = "the next token of a page of this query"


def parse_limit(text: str | None) -> int:
    """`limit` query parameter: an integer 1–100, default 50."""
    if text is None or text == "":
        return DEFAULT_LIMIT
    digits = text.strip()
    significant = digits.lstrip("0")
    # str.isdigit alone takes '²', which int() refuses; int() also refuses over 4300 digits, hence the length check.
    readable = digits.isascii() and digits.isdigit() and len(significant) <= len(str(MAX_LIMIT))
    if not readable or not 1 <= int(significant or "0") <= MAX_LIMIT:
        raise BadRequestError(must_be("limit", LIMIT_RULE, shown(text)))  # query values are text: shown quoted
    return int(significant)


def encode_token(last_key: Mapping[str, Any] | None, scope: str) -> str | None:
    """The `next` token for a typed LastEvaluatedKey (None when there is no next page)."""
    if not last_key:
        return None
    payload = json.dumps({"s": scope, "k": last_key}, separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


def decode_token(token: str | None, scope: str) -> dict[str, Any] | None:
    """The typed ExclusiveStartKey in `token`; 400 naming `next` when it is not ours or not for `scope`."""
    if token is None or token == "":
        return None
    try:
        padded = token + "=" * (-len(token) % 4)
        payload = json.loads(base64.urlsafe_b64decode(padded.encode()).decode())
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise BadRequestError(must_be("next", TOKEN_RULE, "an invalid token")) from None
    key = payload.get("k") if isinstance(payload, dict) else None
    if not isinstance(key, dict) or payload.get("s") != scope or not _is_typed_key(key):
        raise BadRequestError(must_be("next", TOKEN_RULE, "a token of another query"))
    return key


def _is_typed_key(key: Mapping[str, Any]) -> bool:
    return bool(key) and all(
        isinstance(v, dict) and len(v) == 1 and next(iter(v)) in ("S", "N") and isinstance(next(iter(v.values())), str)
        for v in key.values()
    )
