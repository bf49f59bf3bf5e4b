"""Location resolves against the URL the client called: API Gateway's stage or base path, or nothing locally."""

from __future__ import annotations

from typing import Any

import pytest
from chalice.app import Request

from chalicelib.http_location import called_prefix, location
from tests.support.events import api_gateway_event


def request(event: dict[str, Any]) -> Request:
    return Request(event)


def chalice_local_event(resource: str, path: str) -> dict[str, Any]:
    """What `chalice local` (and Chalice's test client) hand the app: the context faked from the path called."""
    return {"requestContext": {"httpMethod": "POST", "resourcePath": resource, "identity": {"sourceIp": "127.0.0.1"},
                               "path": path},
            "headers": {}, "pathParameters": {}, "stageVariables": {}, "multiValueQueryStringParameters": None,
            "body": None}


def test_behind_api_gateway_the_stage_prefix_is_kept():
    event = api_gateway_event("POST", "/users", "/users", stage="api")
    assert called_prefix(request(event)) == "/api"
    assert location(request(event), "users", "ada@example.com") == "/api/users/ada@example.com"


def test_a_custom_domains_base_path_is_kept_instead_of_the_stage():
    event = api_gateway_event("POST", "/orders", "/orders", called_path="/v1/orders")
    assert location(request(event), "orders", "3f2c") == "/v1/orders/3f2c"


def test_a_custom_domain_mapped_at_its_root_has_no_prefix():
    event = api_gateway_event("POST", "/users", "/users", called_path="/users")
    assert location(request(event), "users", "a@b.io") == "/users/a@b.io"


@pytest.mark.parametrize(("resource", "path"), [("/users", "/users"), ("/users", "/users/"),
                                                ("/users/{email}", "/users/a%40b.io")])
def test_chalice_local_has_no_prefix(resource: str, path: str):
    assert called_prefix(request(chalice_local_event(resource, path))) == ""


def test_a_route_with_parameters_strips_as_many_segments_as_it_has():
    event = api_gateway_event("GET", "/users/{email}", "/users/a@b.io", path_parameters={"email": "a@b.io"})
    assert called_prefix(request(event)) == "/api"


def test_an_event_without_a_called_path_falls_back_to_the_route():
    event = chalice_local_event("/users", "")
    assert location(request(event), "users", "a@b.io") == "/users/a@b.io"


def test_segments_are_escaped_only_where_a_path_segment_cannot_hold_them():
    event = chalice_local_event("/users", "/users")
    assert location(request(event), "users", "a+b/c?d%e@x.io") == "/users/a+b%2Fc%3Fd%25e@x.io"
