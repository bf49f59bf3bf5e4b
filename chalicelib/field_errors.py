"""One wording for every validation error, in the API's 400s and the ingest dead letters alike.

- a value that breaks its field's rule: `<field>: must be <rule>, got <what>`, e.g.
  `zipcode: must be a string like "02134" or "02134-1234", got number` (a wrong type names the JSON type),
  `items[2].quantity: must be an integer >= 1, got 0`, `status: must be one of ..., got "DONE"` (a wrong value
  is shown as JSON), `city: must be a string of 1 to 100 characters, got 101 characters`;
- a field that is absent: `<field>: required`;
- fields nobody asked for: `<field>[, <field>]: unknown field[s]; allowed: <fields>`.

Each field has one rule, so a client sees the same `must be` for every way of getting it wrong.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

# Longer values are described (`a string of 300 characters`), not echoed back.
MAX_SHOWN_CHARS = 40
MAX_UNKNOWN_SHOWN = 10
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_-]{1,40}")


class InvalidField(ValueError):
    """A value that breaks its field's rule; the message is in the one wording above."""


def must_be(field: str, rule: str, got: str) -> str:
    """`<field>: must be <rule>, got <what>`."""
    return f"{field}: must be {rule}, got {got}"


def required(field: str) -> str:
    """`<field>: required`."""
    return f"{field}: required"


def unknown_fields(names: Iterable[str], allowed: Iterable[str], prefix: str = "") -> str:
    """`a, b: unknown fields; allowed: x, y`. A name that is not a plain word (empty, blank, holding `:` or `,`,
    long) is shown as JSON or described, so the message still starts with what it names; at most
    MAX_UNKNOWN_SHOWN are listed. `prefix` places them (`items[0].`)."""
    unknown = sorted(names)
    listed = [prefix + (name if _PLAIN_NAME.fullmatch(name) else _quoted(name)) for name in unknown[:MAX_UNKNOWN_SHOWN]]
    if len(unknown) > MAX_UNKNOWN_SHOWN:
        listed[-1] += f" and {len(unknown) - MAX_UNKNOWN_SHOWN:,} more"
    return f"{', '.join(listed)}: unknown field{'s' if len(unknown) > 1 else ''}; allowed: {', '.join(allowed)}"


def _quoted(name: str) -> str:
    if len(name) > MAX_SHOWN_CHARS:
        return f"a name of {len(name)} characters"
    return json.dumps(name)  # ASCII escapes: a lone surrogate or a control character is shown, not sent raw


def json_type(value: Any) -> str:
    """The JSON name of a parsed value's type: what `got` says when the type is wrong."""
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


def shown(value: Any) -> str:
    """A wrong value of the right type, written as JSON (`0`, `1.5`, `"DONE"`); long or empty ones described."""
    if isinstance(value, str):
        if not value:
            return "an empty string"
        if not value.strip():
            return "a blank string"
        if len(value) > MAX_SHOWN_CHARS:
            return f"a string of {len(value)} characters"
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, float) and not math.isfinite(value):  # json.loads reads NaN and Infinity as floats
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, (int, Decimal, float)):
        text = str(value)
        return text if len(text) <= MAX_SHOWN_CHARS else f"a number of {len(text)} characters"
    return json_type(value)


def text_rule(max_length: int) -> str:
    """The rule of a bounded text field."""
    return f"a string of 1 to {max_length} characters"


def bounded_text(value: Any, field: str, max_length: int, error: type[Exception] = InvalidField,
                 rule: str | None = None) -> str:
    """`value` trimmed, 1 to `max_length` characters (code points), or `error` in the one wording."""
    rule = rule or text_rule(max_length)
    if not isinstance(value, str):
        raise error(must_be(field, rule, json_type(value)))
    text = value.strip()
    if not _is_unicode_text(text):
        raise error(must_be(field, rule, "invalid Unicode (an unpaired surrogate escape)"))
    if not text:
        raise error(must_be(field, rule, shown(value)))
    if len(text) > max_length:
        raise error(must_be(field, rule, f"{len(text)} characters"))
    return text


def _is_unicode_text(text: str) -> bool:
    """False for strings holding lone surrogates (JSON escapes like "\\ud800"), which no store can encode."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
