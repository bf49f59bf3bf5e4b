"""`same_value`: the one exact comparison of DynamoDB values (fan-out's changedAttributes, verify's stale items)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from chalicelib.stream.images import same_value


@pytest.mark.parametrize("a, b", [
    (True, Decimal(1)),                      # BOOL true vs N 1: Python says equal
    (False, Decimal(0)),
    ("1", Decimal(1)),                       # S vs N
    ({"a": True}, {"a": Decimal(1)}),        # nested in a map
    ([Decimal(1)], [True]),                  # nested in a list
    ({"x"}, ["x"]),                          # SS vs L
    (b"x", "x"),                             # B vs S
    (None, False),                           # NULL vs BOOL
    ({"a": 1}, {"a": 1, "b": 2}),
    ([1], [1, 1]),
])
def test_values_of_different_dynamodb_types_or_shapes_differ(a: Any, b: Any) -> None:
    assert not same_value(a, b) and not same_value(b, a)


@pytest.mark.parametrize("a, b", [
    (Decimal("1.0"), Decimal("1")),          # one N, written two ways
    ({"m": [Decimal(2), {"s": "x"}]}, {"m": [Decimal(2), {"s": "x"}]}),
    ({Decimal(1), Decimal(2)}, {Decimal(2), Decimal(1)}),
    (None, None),
])
def test_equal_values_of_one_type_are_the_same(a: Any, b: Any) -> None:
    assert same_value(a, b)
