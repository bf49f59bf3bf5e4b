"""Every HTTP route under hostile input (hypothesis): never a 5xx; every error is `{"Code", "Message"}` whose
message names the field (or the body, the media type); nothing is written on any error (every table is
compared before and after)."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlencode

import boto3
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.reliability import figures
from tests.reliability.conftest import RELIABILITY
from tests.support.resources import StageResources

TABLES = ("UsersTable", "UsersByLocationTable", "DeviceMetadataTable", "OrdersTable")
USER = {"email": "ada@example.com", "state": "NY", "city": "Brooklyn", "zipcode": "01234", "active": True}
ORDER = {"name": "n", "items": [{"sku": "A", "quantity": 3, "unit_price": 0.1}]}
USER_FIELDS = ("email", "state", "city", "zipcode", "active", "body", "limit", "next")
ORDER_FIELDS = ("name", "items", "status", "id", "body", "limit", "next")
OK = {200, 201, 202, 204}
# `<field>[, <field>]: ...` in field_errors' one wording; items[3].quantity names `items`.
FIELD_PREFIX = re.compile(r"^(?P<fields>[^:]+):")

# --- What a hostile client sends ----------------------------------------------------------------

unicode_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=40)
scalars = st.none() | st.booleans() | st.integers() | st.floats() | unicode_text | st.decimals(allow_nan=False)
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(unicode_text, inner, max_size=4), max_leaves=12)
huge_text = st.integers(1, 300_000).map(lambda n: "x" * n)
lone_surrogates = st.sampled_from(["\\ud800", "\\udfff", "a\\udbffz", "\\ud83d"])


def deep(depth: int, kind: str) -> str:
    return "[" * depth + "]" * depth if kind == "list" else '{"a":' * depth + "1" + "}" * depth


def to_json(value: Any) -> str:
    return json.dumps(value, default=str, allow_nan=True)


@st.composite
def body_of(draw: st.DrawFn, valid: dict[str, Any], fields: tuple[str, ...]) -> str | bytes:
    """A body near a valid one (a field wrong, missing or extra), or anything at all."""
    how = draw(st.sampled_from(["field", "missing", "extra", "any", "raw", "surrogate", "deep", "huge"]))
    body = dict(valid)
    if how == "field":
        body[draw(st.sampled_from(fields))] = draw(json_values | huge_text)
    elif how == "missing":
        body.pop(draw(st.sampled_from(sorted(body))), None)
    elif how == "extra":
        body[draw(unicode_text)] = draw(json_values)
    elif how == "any":
        return to_json(draw(json_values))
    elif how == "raw":
        return draw(st.binary(max_size=200) | unicode_text.map(lambda s: s.encode("utf-8", "surrogatepass")))
    elif how == "surrogate":
        text = to_json({**body, draw(st.sampled_from(fields)): "SURROGATE"})
        return text.replace('"SURROGATE"', f'"{draw(lone_surrogates)}"')
    elif how == "deep":
        return deep(draw(st.integers(50, 50_000)), draw(st.sampled_from(["list", "object"])))
    else:
        body[draw(st.sampled_from(fields))] = "y" * draw(st.integers(100_000, 1_000_000))
    return to_json(body)


content_types = st.sampled_from(["application/json", "application/json", "application/json; charset=utf-8",
                                 "text/plain", "application/x-www-form-urlencoded", "", "*/*", "application/xml"])
path_values = unicode_text | huge_text.map(lambda s: s[:3000]) | st.sampled_from(
    ["ada@example.com", "ADA@EXAMPLE.COM ", "%", "%zz", "..", "a/b", "\x00", "a#b"])
query_values = unicode_text | st.integers().map(str) | st.sampled_from(["", "0", "101", "-1", "1e3", "NaN"])


def query_of(names: tuple[str, ...]) -> st.SearchStrategy[str]:
    pairs = st.dictionaries(st.sampled_from(names) | unicode_text, query_values, max_size=4)
    return pairs.map(lambda q: ("?" + urlencode(q, encoding="utf-8", errors="surrogatepass")) if q else "")


# --- The checks -----------------------------------------------------------------------------------

class Api:
    """The chalice test client over in-process moto, with the table snapshots the checks compare."""

    def __init__(self, client: Any, aws: StageResources):
        self.client = client
        self.dynamodb = boto3.client("dynamodb")
        self.tables = [aws[name] for name in TABLES]
        self.statuses: Counter[int] = Counter()
        self.cases = 0
        self.dynamodb.put_item(TableName=aws["UsersTable"], Item={
            "email": {"S": USER["email"]}, "state": {"S": "NY"}, "city": {"S": "Brooklyn"},
            "zipcode": {"S": "01234"}, "active": {"BOOL": True}})

    def snapshot(self) -> dict[str, list[Any]]:
        found = {}
        for table in self.tables:
            pages = self.dynamodb.get_paginator("scan").paginate(TableName=table, ConsistentRead=True)
            found[table] = sorted(json.dumps(item, sort_keys=True) for page in pages for item in page["Items"])
        return found

    def check(self, method: str, path: str, body: str | bytes = b"", content_type: str | None = "application/json",
              fields: tuple[str, ...] = ()) -> int:
        headers = {"Content-Type": content_type} if content_type else {}
        before = self.snapshot()
        payload = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body
        response = self.client.http.request(method, path, headers=headers, body=payload)
        self.cases += 1
        self.statuses[response.status_code] += 1
        status = response.status_code
        assert status < 500, f"{method} {path[:200]}: {status} {response.body[:500]!r}"
        if status in OK:
            return status
        assert self.snapshot() == before, f"{method} {path[:200]}: {status} but a table changed"
        answer = json.loads(response.body)
        assert set(answer) == {"Code", "Message"}, answer
        message = answer["Message"]
        if status == 415:
            assert "media type" in message.lower(), message
        elif status in (403, 405):  # API Gateway's answer to a path no route has for the method (`/users/`)
            assert answer["Code"] in ("MissingAuthenticationTokenError", "MethodNotAllowedError"), answer
        else:
            named = FIELD_PREFIX.match(message)
            assert named and named["fields"].strip(), f"{status} {message!r} names no field"
            if "unknown field" not in message:  # otherwise it names the unknown ones, whatever they are
                for field in named["fields"].split(", "):
                    assert re.split(r"[\[.]", field)[0] in fields, f"{status} {message!r} names no field of the route"
        return status


@pytest.fixture
def api(chalice_client: Any, aws: StageResources) -> Iterator[Api]:
    checked = Api(chalice_client, aws)
    yield checked


def report(route: str, api: Api) -> None:
    errors = sum(n for status, n in api.statuses.items() if status not in OK)
    statuses = ", ".join(f"{status}×{n}" for status, n in sorted(api.statuses.items()))
    figures.record("HTTP routes under hostile input", route=route, cases=api.cases, errors=errors,
                   **{"5xx": sum(n for s, n in api.statuses.items() if s >= 500)}, statuses=statuses,
                   **{"writes on error": 0})


def test_post_users(api: Api) -> None:
    @RELIABILITY
    @given(body=body_of(USER, ("email", "state", "city", "zipcode", "active")), content_type=content_types)
    def case(body: str | bytes, content_type: str) -> None:
        api.check("POST", "/users", body, content_type, USER_FIELDS)

    case()
    report("POST /users", api)


def test_patch_users(api: Api) -> None:
    @RELIABILITY
    @given(email=path_values, body=body_of({k: v for k, v in USER.items() if k != "email"},
                                           ("state", "city", "zipcode", "active")), content_type=content_types)
    def case(email: str, body: str | bytes, content_type: str) -> None:
        api.check("PATCH", f"/users/{quote(email, safe='', errors='surrogatepass')}", body, content_type,
                  USER_FIELDS)

    case()
    report("PATCH /users/{email}", api)


def test_get_and_delete_users(api: Api) -> None:
    @RELIABILITY
    @given(method=st.sampled_from(["GET", "DELETE"]), email=path_values)
    def case(method: str, email: str) -> None:
        api.check(method, f"/users/{quote(email, safe='', errors='surrogatepass')}", fields=USER_FIELDS)

    case()
    report("GET, DELETE /users/{email}", api)


def test_list_users(api: Api) -> None:
    @RELIABILITY
    @given(query=query_of(("state", "city", "limit", "next")))
    def case(query: str) -> None:
        api.check("GET", f"/users{query}", fields=USER_FIELDS)

    case()
    report("GET /users?…", api)


order_fields = ("name", "items")
line_item = st.fixed_dictionaries({"sku": json_values, "quantity": json_values, "unit_price": json_values})


@st.composite
def order_body(draw: st.DrawFn) -> str | bytes:
    if draw(st.booleans()):
        return draw(body_of(ORDER, order_fields))
    items = draw(st.lists(st.one_of(line_item, json_values, st.just(ORDER["items"][0])), max_size=120))
    return to_json({"name": draw(json_values | st.just("n")), "items": items})


def test_post_orders(api: Api) -> None:
    @RELIABILITY
    @given(body=order_body(), content_type=content_types)
    def case(body: str | bytes, content_type: str) -> None:
        api.check("POST", "/orders", body, content_type, ORDER_FIELDS)

    case()
    report("POST /orders", api)


def test_get_orders(api: Api) -> None:
    @RELIABILITY
    @given(order_id=path_values, query=query_of(("status", "limit", "next")), by_id=st.booleans())
    def case(order_id: str, query: str, by_id: bool) -> None:
        path = f"/orders/{quote(order_id, safe='', errors='surrogatepass')}" if by_id else f"/orders{query}"
        api.check("GET", path, fields=ORDER_FIELDS)

    case()
    report("GET /orders/{id}, /orders?…", api)
