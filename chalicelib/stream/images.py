"""DynamoDB attribute values (Lambda's JSON shape) to plain Python values and back.

Lambda delivers binary (B, BS) as base64 text; boto3's TypeDeserializer would wrap it in `Binary`
without decoding, so B/BS are decoded here to `bytes`. N becomes an exact `Decimal`.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer


class _LambdaImageDeserializer(TypeDeserializer):
    def _deserialize_n(self, value: Any) -> Decimal:
        number = super()._deserialize_n(value)
        if not number.is_finite():  # DynamoDB never stores NaN/Infinity: the record is malformed
            raise ValueError(f"N value {value!r} is not a finite number")
        return number

    def _deserialize_b(self, value: Any) -> bytes:
        if isinstance(value, (bytes, bytearray)):
            return bytes(value)
        return base64.b64decode(value, validate=True)


_deserializer = _LambdaImageDeserializer()
_serializer = TypeSerializer()


def plain_image(image: Mapping[str, Any]) -> dict[str, Any]:
    """`{"a": {"N": "1.5"}}` → `{"a": Decimal("1.5")}` for every DynamoDB type."""
    return {name: _deserializer.deserialize(value) for name, value in image.items()}


def typed_item(item: Mapping[str, Any]) -> dict[str, Any]:
    """Plain Python values → DynamoDB's typed shape for the low-level client."""
    return {name: _serializer.serialize(value) for name, value in item.items()}


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
