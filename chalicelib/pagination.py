"""Opaque pagination tokens: DynamoDB's LastEvaluatedKey, bound to the query that produced it."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any

from chalice import BadRequestError

DEFAULT_LIMIT = 50
MAX_LIMIT = 100


def parse_limit(text: str | None) -> int:
    """`limit` query parameter: an integer 1–100, default 50."""
    if text is None or text == "":
        return DEFAULT_LIMIT
    digits = text.strip()
    # str.isdigit alone takes '²', which int() refuses; int() also refuses over 4300 digits, hence the length check.
    significant = digits.lstrip("0")
    if not (digits.isascii() and digits.isdigit()) or len(significant) > len(str(MAX_LIMIT)):
        shown = repr(text) if len(text) <= 40 else f"a value of {len(text)} characters"
        raise BadRequestError(f"limit: must be an integer from 1 to {MAX_LIMIT}, got {shown}")
    limit = int(significant or "0")
    if not 1 <= limit <= MAX_LIMIT:
        raise BadRequestError(f"limit: must be an integer from 1 to {MAX_LIMIT}, got {limit}")
    return limit


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
        raise BadRequestError("next: invalid pagination token") from None
    key = payload.get("k") if isinstance(payload, dict) else None
    if not isinstance(key, dict) or payload.get("s") != scope or not _is_typed_key(key):
        raise BadRequestError("next: invalid pagination token for this query")
    return key


def _is_typed_key(key: Mapping[str, Any]) -> bool:
    return bool(key) and all(
        isinstance(v, dict) and len(v) == 1 and next(iter(v)) in ("S", "N") and isinstance(next(iter(v.values())), str)
        for v in key.values()
    )
