"""Exact JSON: numbers keep every digit, binary is base64, sets are sorted arrays."""

import json
from decimal import Decimal

import pytest

from chalicelib.exact_json import dumps


def test_numbers_keep_every_digit():
    text = dumps({"n": Decimal("12345678901234567890.123456789"), "i": 7, "small": Decimal("1E-7")})
    assert text == '{"n":12345678901234567890.123456789,"i":7,"small":0.0000001}'
    assert json.loads(text, parse_float=Decimal)["n"] == Decimal("12345678901234567890.123456789")


def test_binary_sets_null_and_nesting():
    value = {"b": b"\x00\xff", "ss": {"b", "a"}, "ns": {Decimal("10"), Decimal("9")}, "bs": {b"\x02", b"\x01"},
             "m": {"l": [None, True, False, "é"]}}
    assert json.loads(dumps(value)) == {
        "b": "AP8=", "ss": ["a", "b"], "ns": [9, 10], "bs": ["AQ==", "Ag=="], "m": {"l": [None, True, False, "é"]},
    }


def test_unsupported_values_are_refused():
    with pytest.raises(TypeError):
        dumps({"x": object()})
    with pytest.raises(ValueError):
        dumps(Decimal("NaN"))
