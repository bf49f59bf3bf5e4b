"""JSON text from plain Python values without losing anything: every digit of a number, binary, sets.

`json.dumps` cannot write a Decimal as a number without going through float (Chalice's own encoder
does exactly that), so numbers are written from their Decimal text. Binary becomes base64, sets
become sorted arrays, None becomes null.
"""

from __future__ import annotations

import base64
import json
from decimal import Decimal
from typing import Any

_encode_string = json.JSONEncoder(ensure_ascii=False).encode


def dumps(value: Any) -> str:
    """Compact JSON text for `value` (dict, list, str, bool, None, int, Decimal, float, bytes, set)."""
    parts: list[str] = []
    _write(value, parts)
    return "".join(parts)


def number_text(number: Decimal | int) -> str:
    """A JSON number literal with every digit of `number` (no exponent for ordinary magnitudes)."""
    if isinstance(number, bool):
        raise TypeError("booleans are not numbers")
    if isinstance(number, int):
        return str(number)
    if not number.is_finite():
        raise ValueError(f"{number} has no JSON form")
    text = str(number)
    if "E" in text or "e" in text:
        exponent = number.as_tuple().exponent
        # Plain notation when it stays short; otherwise an exponent form, which JSON also allows.
        if isinstance(exponent, int) and -40 <= exponent <= 40:
            text = format(number, "f")
    return text


def _write(value: Any, out: list[str]) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, str):
        out.append(_encode_string(value))
    elif isinstance(value, (int, Decimal)):
        out.append(number_text(value))
    elif isinstance(value, float):
        out.append(json.dumps(value, allow_nan=False))
    elif isinstance(value, (bytes, bytearray)):
        out.append(_encode_string(base64.b64encode(bytes(value)).decode("ascii")))
    elif isinstance(value, dict):
        out.append("{")
        for index, (key, item) in enumerate(value.items()):
            if index:
                out.append(",")
            out.append(_encode_string(str(key)))
            out.append(":")
            _write(item, out)
        out.append("}")
    elif isinstance(value, (list, tuple)):
        _write_array(list(value), out)
    elif isinstance(value, (set, frozenset)):
        _write_array(sorted(value), out)  # DynamoDB sets hold one type: str, Decimal or bytes
    else:
        raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _write_array(items: list[Any], out: list[str]) -> None:
    out.append("[")
    for index, item in enumerate(items):
        if index:
            out.append(",")
        _write(item, out)
    out.append("]")
