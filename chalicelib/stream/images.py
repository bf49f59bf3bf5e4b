"""DynamoDB attribute values (Lambda's JSON shape) to plain Python values and back.

Lambda delivers binary (B, BS) as base64 text; boto3's TypeDeserializer would wrap it in `Binary`
without decoding, so B/BS are decoded here to `bytes`. N becomes an exact `Decimal`.

Reading is hand-written rather than boto3's `TypeDeserializer` (whose rules it keeps, lower-case type names
included): that one finds each value's method by `getattr` on a built name, a third of the stream consumers'
CPU per record. Writing goes through boto3's `TypeSerializer`, except for the plain strings and booleans that
make up most items.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from json.encoder import encode_basestring as _encode_string  # exact_json's string writer, in C
from typing import Any

from boto3.dynamodb.types import DYNAMODB_CONTEXT, TypeSerializer

_create_decimal = DYNAMODB_CONTEXT.create_decimal
_serializer = TypeSerializer()


def _number(value: Any) -> Decimal:
    number = _create_decimal(value)
    if not number.is_finite():  # DynamoDB never stores NaN/Infinity: the record is malformed
        raise ValueError(f"N value {value!r} is not a finite number")
    return number


def _binary(value: Any) -> bytes:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    return base64.b64decode(value, validate=True)


def _same(value: Any) -> Any:
    return value


_READERS: dict[str, Callable[[Any], Any]] = {
    "S": _same,
    "N": _number,
    "BOOL": _same,
    "NULL": lambda _value: None,
    "B": _binary,
    "SS": lambda value: set(value),
    "NS": lambda value: set(map(_number, value)),
    "BS": lambda value: set(map(_binary, value)),
    "L": lambda value: [plain_value(v) for v in value],
    "M": lambda value: {k: plain_value(v) for k, v in value.items()},
}

_READERS_ANY_CASE = {kind.lower(): reader for kind, reader in _READERS.items()}


def plain_value(value: Mapping[str, Any]) -> Any:
    """One typed value → its plain Python value (TypeError for an empty or unknown type, as boto3)."""
    if not value:
        raise TypeError("Value must be a nonempty dictionary whose key is a valid dynamodb type.")
    kind = next(iter(value.keys()))
    reader = _READERS.get(kind)
    if reader is None:
        reader = _READERS_ANY_CASE.get(f"{kind}".lower())  # boto3 accepts {"s": ...} too
        if reader is None:
            raise TypeError(f"Dynamodb type {kind} is not supported")
    return reader(value[kind])


def plain_image(image: Mapping[str, Any]) -> dict[str, Any]:
    """`{"a": {"N": "1.5"}}` → `{"a": Decimal("1.5")}` for every DynamoDB type."""
    plain = {}
    for name, value in image.items():
        # A string (most attributes) read in place: no call.
        plain[name] = value["S"] if type(value) is dict and len(value) == 1 and "S" in value else plain_value(value)
    return plain


# N texts whose exact JSON form is the text itself: str(Decimal(text)) == text, ≤ 38 digits (DynamoDB's precision).
_PLAIN_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]{0,19})(?:\.[0-9]{1,18})?").fullmatch


def image_json(image: Mapping[str, Any]) -> str | None:
    """`exact_json.dumps(plain_image(image))` without building plain values, for images of strings, plain numbers,
    booleans, nulls, maps and lists (the fan-out's hot path); None for anything else, malformed images included:
    the caller then takes the plain path, which decides (and reports) them."""
    if type(image) is not dict:
        return None
    parts = []
    for name, value in image.items():
        if type(name) is not str:
            return None
        if type(value) is dict and len(value) == 1 and type(text := value.get("S")) is str:
            parts.append(f"{_encode_string(name)}:{_encode_string(text)}")  # most attributes: no call
            continue
        written = _value_json(value)
        if written is None:
            return None
        parts.append(f"{_encode_string(name)}:{written}")
    return "{" + ",".join(parts) + "}"


def _value_json(value: Any) -> str | None:
    if type(value) is not dict or len(value) != 1:
        return None
    ((kind, inner),) = value.items()
    if kind == "S":
        return _encode_string(inner) if type(inner) is str else None
    if kind == "N":
        return inner if type(inner) is str and _PLAIN_NUMBER(inner) else None
    if kind == "BOOL":
        return ("true" if inner else "false") if type(inner) is bool else None
    if kind == "NULL":
        return "null"
    if kind == "M":
        return image_json(inner)
    if kind == "L" and type(inner) is list:
        items = [_value_json(item) for item in inner]
        return None if None in items else "[" + ",".join(items) + "]"  # type: ignore[arg-type]
    return None


def typed_value(value: Any) -> dict[str, Any]:
    """One plain value → DynamoDB's typed shape (strings and booleans without boto3's type probing)."""
    kind = type(value)
    if kind is str:
        return {"S": value}
    if kind is bool:
        return {"BOOL": value}
    return _serializer.serialize(value)


def typed_item(item: Mapping[str, Any]) -> dict[str, Any]:
    """Plain Python values → DynamoDB's typed shape for the low-level client."""
    return {name: typed_value(value) for name, value in item.items()}


def plain_item(item: Mapping[str, Any]) -> dict[str, Any]:
    """A low-level client's typed item → plain Python values (binary already bytes)."""
    return plain_image(item)


def same_value(a: Any, b: Any) -> bool:
    """Equal as DynamoDB values, type included (Python's `True == Decimal(1)` would hide a BOOL → N change).

    The one comparison of plain values: the fan-out's `changedAttributes` and `ops verify`'s stale items.
    """
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same_value(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)
