"""JSON text from plain Python values without losing anything: every digit of a number, binary, sets.

`json.dumps` cannot write a Decimal as a number without going through float (Chalice's own encoder
does exactly that), so numbers are written from their Decimal text. Binary becomes base64, sets
become sorted arrays, None becomes null.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from decimal import Decimal
from json.encoder import c_make_encoder  # type: ignore[attr-defined]
from json.encoder import encode_basestring as _encode_string  # what JSONEncoder(ensure_ascii=False) uses, in C
from typing import Any


def dumps(value: Any) -> str:
    """Compact JSON text for `value` (dict, list, str, bool, None, int, Decimal, float, bytes, set)."""
    return _text(value)


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


def _text(value: Any) -> str:
    # The exact types of decoded images by table lookup (the fan-out's hot path); anything else, subclasses
    # included, by the general rules below.
    writer = _WRITERS.get(type(value))
    return writer(value) if writer is not None else _text_of_any(value)


# json's C encoder writes these exactly as the rules below do (str keys, no floats), an order of magnitude faster.
_SCALARS = frozenset({str, bool, type(None), int})
_STR = frozenset({str})
# CPython's C encoder (absent only on other Pythons, which take the general path).
_encode_c = c_make_encoder(None, None, _encode_string, None, ":", ",", False, False, False) if c_make_encoder else None


def _encode_native(value: Any) -> str | None:
    return "".join(_encode_c(value, 0)) if _encode_c is not None else None


def _native(value: dict[Any, Any] | list[Any]) -> bool:
    """True when `value` holds only dicts (str keys), lists, str, bool, None and int: what the C encoder may write."""
    if type(value) is dict:
        if not _STR.issuperset(map(type, value)):
            return False
        items: Any = value.values()
    else:
        items = value
    for item in items:
        kind = type(item)
        if kind not in _SCALARS and not ((kind is dict or kind is list) and _native(item)):
            return False
    return True


def _object(value: dict[Any, Any]) -> str:
    if _native(value) and (text := _encode_native(value)) is not None:
        return text  # e.g. an event's Detail whose images hold no number, binary or set
    get = _WRITERS.get
    return "{" + ",".join([_encode_string(key if type(key) is str else str(key)) + ":"
                           + get(type(item), _text_of_any)(item) for key, item in value.items()]) + "}"


def _array(items: Any) -> str:
    if type(items) is list and _native(items) and (text := _encode_native(items)) is not None:
        return text
    get = _WRITERS.get
    return "[" + ",".join([get(type(item), _text_of_any)(item) for item in items]) + "]"


def _sorted_array(items: Any) -> str:
    return _array(sorted(items))  # DynamoDB sets hold one type: str, Decimal or bytes


def _binary(value: bytes | bytearray) -> str:
    return _encode_string(base64.b64encode(bytes(value)).decode("ascii"))


def _float(value: float) -> str:
    return json.dumps(value, allow_nan=False)


_WRITERS: dict[type, Callable[[Any], str]] = {
    str: _encode_string,
    bool: lambda value: "true" if value else "false",
    type(None): lambda _value: "null",
    int: number_text,
    Decimal: number_text,
    dict: _object,
    list: _array,
    set: _sorted_array,
    bytes: _binary,
    float: _float,
}


def _text_of_any(value: Any) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return _encode_string(value)
    if isinstance(value, (int, Decimal)):
        return number_text(value)
    if isinstance(value, float):
        return _float(value)
    if isinstance(value, (bytes, bytearray)):
        return _binary(value)
    if isinstance(value, dict):
        return _object(value)
    if isinstance(value, (list, tuple)):
        return _array(value)
    if isinstance(value, (set, frozenset)):
        return _sorted_array(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
