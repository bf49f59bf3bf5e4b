"""Users API through chalice.test.Client against moto: success paths and every malformed input."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from tests.support.events import stream_event
from tests.support.streams import StreamReader

VALID = {"email": "  Ada@Example.COM ", "state": "NY", "city": "Brooklyn", "zipcode": "01234"}


def post(client: Any, body: Any, content_type: str = "application/json") -> Any:
    payload = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return client.http.post("/users", headers={"Content-Type": content_type}, body=payload)


def patch(client: Any, email: str, body: Any) -> Any:
    payload = body if isinstance(body, str) else json.dumps(body)
    return client.http.patch(f"/users/{email}", headers={"Content-Type": "application/json"}, body=payload)


def users_in_table(aws: Any) -> list[dict[str, Any]]:
    return boto3.client("dynamodb").scan(TableName=aws["UsersTable"])["Items"]


def test_post_stores_a_normalized_user_and_answers_201_with_location(chalice_client, aws):
    response = post(chalice_client, VALID)
    assert response.status_code == 201
    assert response.headers["Location"] == "/users/ada@example.com"
    user = response.json_body
    assert user["email"] == "ada@example.com" and user["zipcode"] == "01234" and user["active"] is True
    assert user["created_at"].endswith("Z") and user["created_at"] == user["updated_at"]
    stored = chalice_client.http.get("/users/ada@example.com")
    assert stored.status_code == 200 and stored.json_body == user
    item = users_in_table(aws)[0]
    assert item["zipcode"] == {"S": "01234"} and item["active"] == {"BOOL": True}


def test_duplicate_email_is_409_and_does_not_overwrite(chalice_client, aws):
    assert post(chalice_client, VALID).status_code == 201
    again = post(chalice_client, {**VALID, "email": "ADA@example.com", "city": "Queens"})
    assert again.status_code == 409
    assert "email" in again.json_body["Message"]
    assert chalice_client.http.get("/users/ada@example.com").json_body["city"] == "Brooklyn"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ("{not json", "body"),
        ("[1, 2]", "body"),
        ('"just a string"', "body"),
        ("", "body"),
        ({k: v for k, v in VALID.items() if k != "email"}, "email"),
        ({k: v for k, v in VALID.items() if k != "state"}, "state"),
        ({k: v for k, v in VALID.items() if k != "city"}, "city"),
        ({k: v for k, v in VALID.items() if k != "zipcode"}, "zipcode"),
        ({**VALID, "nickname": "ada"}, "nickname"),
        ({**VALID, "email": 42}, "email"),
        ({**VALID, "email": "not-an-address"}, "email"),
        ({**VALID, "email": "a@b"}, "email"),
        ({**VALID, "email": "a b@example.com"}, "email"),
        ({**VALID, "email": ""}, "email"),
        ({**VALID, "state": ""}, "state"),
        ({**VALID, "state": "   "}, "state"),
        ({**VALID, "state": "S" * 101}, "state"),
        ({**VALID, "state": ["NY"]}, "state"),
        ({**VALID, "city": ""}, "city"),
        ({**VALID, "city": "C" * 101}, "city"),
        ({**VALID, "city": "Brook#lyn"}, "city"),
        ({**VALID, "city": None}, "city"),
        ({**VALID, "zipcode": 1234}, "zipcode"),
        ({**VALID, "zipcode": "1234"}, "zipcode"),
        ({**VALID, "zipcode": "12345-12"}, "zipcode"),
        ({**VALID, "zipcode": "abcde"}, "zipcode"),
        ({**VALID, "active": "yes"}, "active"),
        ({**VALID, "active": 1}, "active"),
    ],
)
def test_invalid_post_is_400_naming_the_field_and_writes_nothing(chalice_client, aws, body, field):
    response = post(chalice_client, body)
    assert response.status_code == 400, response.body
    assert response.json_body["Code"] == "BadRequestError"
    assert response.json_body["Message"].startswith(field), response.json_body["Message"]
    assert users_in_table(aws) == []


def test_post_that_is_not_json_is_415_and_writes_nothing(chalice_client, aws):
    response = post(chalice_client, "email=a@b.com", content_type="text/plain")
    assert response.status_code == 415
    assert users_in_table(aws) == []


def test_boundary_values_are_accepted(chalice_client):
    body = {**VALID, "state": "S" * 100, "city": "C" * 100, "zipcode": "02134-1234", "active": False}
    response = post(chalice_client, body)
    assert response.status_code == 201
    assert response.json_body["active"] is False and response.json_body["zipcode"] == "02134-1234"


def test_get_unknown_user_is_404(chalice_client):
    response = chalice_client.http.get("/users/nobody@example.com")
    assert response.status_code == 404 and "email" in response.json_body["Message"]
    assert chalice_client.http.get("/users/not-an-email").status_code == 404


def test_patch_updates_only_the_given_fields(chalice_client):
    created = post(chalice_client, VALID).json_body
    response = patch(chalice_client, "ada@example.com", {"city": "Queens", "active": False})
    assert response.status_code == 200
    user = response.json_body
    assert user["city"] == "Queens" and user["active"] is False and user["zipcode"] == "01234"
    assert user["created_at"] == created["created_at"] and user["updated_at"] >= created["updated_at"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ("{oops", "body"),
        ({}, "body"),
        ({"email": "other@example.com"}, "email"),
        ({"city": "Bad#City"}, "city"),
        ({"state": ""}, "state"),
        ({"zipcode": 12345}, "zipcode"),
        ({"active": "false"}, "active"),
        ({"city": "Queens", "unknown": 1}, "unknown"),
    ],
)
def test_invalid_patch_is_400_and_changes_nothing(chalice_client, aws, body, field):
    post(chalice_client, VALID)
    before = users_in_table(aws)
    response = patch(chalice_client, "ada@example.com", body)
    assert response.status_code == 400
    assert response.json_body["Message"].startswith(field), response.json_body["Message"]
    assert users_in_table(aws) == before


def test_patch_unknown_user_is_404_and_creates_nothing(chalice_client, aws):
    response = patch(chalice_client, "ghost@example.com", {"city": "Queens"})
    assert response.status_code == 404
    assert users_in_table(aws) == []


def test_delete_is_204_then_404(chalice_client, aws):
    post(chalice_client, VALID)
    assert chalice_client.http.delete("/users/Ada@Example.com").status_code == 204
    assert users_in_table(aws) == []
    assert chalice_client.http.delete("/users/ada@example.com").status_code == 404


def replicate(chalice_client: Any, aws: Any, reader: StreamReader) -> None:
    """Feed the users stream's new records to the replication handler, as Lambda would."""
    records = reader.read()
    if records:
        chalice_client.lambda_.invoke("replicate_users", stream_event(*records))


def test_list_by_state_and_city_reads_the_replicated_table_with_pagination(chalice_client, aws):
    reader = StreamReader(aws["UsersStreamArn"])
    people = [("a@x.io", "Brooklyn"), ("b@x.io", "Brooklyn"), ("c@x.io", "Queens"), ("d@x.io", "Albany")]
    for email, city in people:
        assert post(chalice_client, {**VALID, "email": email, "city": city}).status_code == 201
    post(chalice_client, {**VALID, "email": "e@x.io", "state": "CA", "city": "Los Angeles"})
    replicate(chalice_client, aws, reader)

    brooklyn = chalice_client.http.get("/users?state=NY&city=Brooklyn").json_body
    assert [u["email"] for u in brooklyn["items"]] == ["a@x.io", "b@x.io"] and brooklyn["next"] is None
    assert brooklyn["items"][0] == {"state": "NY", "city": "Brooklyn", "email": "a@x.io", "active": True,
                                    "city_email": "Brooklyn#a@x.io"}

    seen, token, pages = [], None, 0
    while True:
        url = "/users?state=NY&limit=1" + (f"&next={token}" if token else "")
        page = chalice_client.http.get(url).json_body
        seen += [u["email"] for u in page["items"]]
        pages += 1
        token = page["next"]
        if not token:
            break
    assert sorted(seen) == ["a@x.io", "b@x.io", "c@x.io", "d@x.io"] and pages >= 4


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("", "state"),
        ("?city=Brooklyn", "state"),
        ("?state=", "state"),
        ("?state=NY&limit=0", "limit"),
        ("?state=NY&limit=101", "limit"),
        ("?state=NY&limit=ten", "limit"),
        ("?state=NY&limit=-1", "limit"),
        ("?state=NY&next=garbage!!", "next"),
        ("?state=NY&next=eyJzIjoib3RoZXIiLCJrIjp7fX0", "next"),
        ("?state=NY&city=A%23B", "city"),
    ],
)
def test_invalid_list_queries_are_400_naming_the_parameter(chalice_client, query, field):
    response = chalice_client.http.get(f"/users{query}")
    assert response.status_code == 400
    assert response.json_body["Message"].startswith(field), response.json_body["Message"]


def test_a_token_from_one_query_is_refused_by_another(chalice_client, aws):
    reader = StreamReader(aws["UsersStreamArn"])
    for email in ("a@x.io", "b@x.io"):
        post(chalice_client, {**VALID, "email": email})
    replicate(chalice_client, aws, reader)
    token = chalice_client.http.get("/users?state=NY&limit=1").json_body["next"]
    assert token
    assert chalice_client.http.get(f"/users?state=CA&limit=1&next={token}").status_code == 400
