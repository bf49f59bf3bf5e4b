"""The HTTP API held to the SPEC's letter with unusual-but-valid and hostile input: every answer is the
contract's status and shape (never a 500), and nothing is written on any error."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from chalice.test import Client
from moto import mock_aws

from chalicelib import clients
from tests.support.events import api_gateway_event, stream_event
from tests.support.streams import StreamReader

ROOT = Path(__file__).resolve().parents[2]
JSON = {"Content-Type": "application/json"}
USER = {"email": "ada@example.com", "state": "NY", "city": "Brooklyn", "zipcode": "01234"}
ORDER = {"name": "n", "items": [{"sku": "A", "quantity": 3, "unit_price": 0.1}]}


def post(client: Any, path: str, body: Any, headers: dict[str, str] = JSON) -> Any:
    payload = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return client.http.post(path, headers=headers, body=payload)


def items(table: str) -> list[dict[str, Any]]:
    return boto3.client("dynamodb").scan(TableName=table, ConsistentRead=True)["Items"]


def put_target(aws: Any, state: str, city: str, email: str) -> None:
    boto3.client("dynamodb").put_item(TableName=aws["UsersByLocationTable"], Item={
        "state": {"S": state}, "city": {"S": city}, "email": {"S": email}, "active": {"BOOL": True},
        "city_email": {"S": f"{city}#{email}"}})


# --- Malformed input: a 400 naming the field, never a 500, nothing written ----------------------

@pytest.mark.parametrize(("body", "field"), [
    ({**USER, "zipcode": "02134\n"}, "zipcode"),
    ({**USER, "zipcode": "02134-1234\n"}, "zipcode"),
    ('{"email": "ada@example.com", "state": "NY", "city": "\\ud800", "zipcode": "01234"}', "city"),
    ('{"email": "ada@example.com", "state": "\\udfff", "city": "B", "zipcode": "01234"}', "state"),
    ("[" * 100_000, "body"),
    ('{"email": ' + "[" * 100_000, "body"),
    ('{"email": 1e9999999999999999999}', "body"),
])
def test_a_hostile_user_body_is_a_400_naming_the_field_and_writes_nothing(chalice_client, aws, body, field):
    # WHEN a user body with a hidden newline, an unpaired surrogate or absurd nesting is posted
    response = post(chalice_client, "/users", body)
    # THEN it is refused naming the field, and the users table stays empty
    assert response.status_code == 400, response.body
    assert response.json_body["Code"] == "BadRequestError"
    assert response.json_body["Message"].startswith(f"{field}:"), response.json_body["Message"]
    assert items(aws["UsersTable"]) == []


@pytest.mark.parametrize(("body", "field"), [
    ({"zipcode": "02134\n"}, "zipcode"),
    ('{"city": "\\ud800"}', "city"),
    ("{" * 50_000, "body"),
])
def test_a_hostile_patch_is_a_400_and_changes_nothing(chalice_client, aws, body, field):
    # GIVEN a stored user
    assert post(chalice_client, "/users", USER).status_code == 201
    before = items(aws["UsersTable"])
    # WHEN a hostile patch is sent
    response = chalice_client.http.patch("/users/ada@example.com", headers=JSON,
                                         body=body if isinstance(body, str) else json.dumps(body))
    # THEN it is a 400 naming the field and the user is unchanged
    assert response.status_code == 400, response.body
    assert response.json_body["Message"].startswith(f"{field}:"), response.json_body["Message"]
    assert items(aws["UsersTable"]) == before


@pytest.mark.parametrize(("body", "field"), [
    ('{"name": "\\ud800"}', "name"),
    ('{"name": "n", "items": [{"sku": "\\udc00", "quantity": 1, "unit_price": 1}]}', "items[0].sku"),
    ("[" * 100_000, "body"),
    ('{"name": "n", "items": [{"sku": "A", "quantity": 1, "unit_price": 1e9999999999999999999}]}', "body"),
    ('{"name": "n", "items": [{"sku": "A", "quantity": 1, "unit_price": 1e-9999999999999999999}]}', "body"),
])
def test_a_hostile_order_body_is_a_400_naming_the_field_and_writes_nothing(chalice_client, aws, body, field):
    response = post(chalice_client, "/orders", body)
    assert response.status_code == 400, response.body
    assert response.json_body["Message"].startswith(f"{field}:"), response.json_body["Message"]
    assert items(aws["OrdersTable"]) == []


@pytest.mark.parametrize("path", ["/users?state=NY&limit=", "/orders?status=PENDING&limit="])
@pytest.mark.parametrize("limit", ["%C2%B2", "%D9%A5", "%EF%BC%95", "1%C2%B2", "9" * 5000])
def test_a_limit_of_odd_digits_is_a_400_naming_limit(chalice_client, path, limit):
    # WHEN limit is '²', an Arabic-Indic or a full-width digit, or more digits than int() will read
    response = chalice_client.http.get(path + limit)
    # THEN it is an ordinary 400 naming `limit` (not a 500, not silently read as 5)
    assert response.status_code == 400, response.body
    assert response.json_body["Message"].startswith("limit:"), response.json_body["Message"]


@pytest.mark.parametrize("query", ["state=" + "S" * 101, "state=" + "S" * 3000, "state=NY&city=" + "C" * 101])
def test_a_place_longer_than_any_stored_one_is_a_400_naming_it(chalice_client, query):
    # A state over 2048 bytes is a key DynamoDB refuses to query (a ValidationException, not an empty page)
    response = chalice_client.http.get(f"/users?{query}")
    assert response.status_code == 400, response.body
    assert response.json_body["Message"].startswith(query.rsplit("&", 1)[-1].split("=")[0] + ":")


def test_a_limit_with_many_leading_zeros_is_still_its_number(chalice_client):
    response = chalice_client.http.get("/users?state=NY&limit=" + "0" * 5000 + "100")
    assert response.status_code == 200 and response.json_body == {"items": [], "next": None}


# --- Success shapes -------------------------------------------------------------------------------

@pytest.mark.parametrize("content_type", ["application/json; charset=utf-8", "application/json;charset=UTF-8",
                                          "Application/JSON"])
def test_json_with_a_charset_or_any_case_is_json(chalice_client, aws, content_type):
    response = post(chalice_client, "/users", USER, {"Content-Type": content_type})
    assert response.status_code == 201, response.body
    order = post(chalice_client, "/orders", ORDER, {"Content-Type": content_type})
    assert order.status_code == 202, order.body


@pytest.mark.parametrize("email", ["a+tag@example.com", "o'brien@example.com", "x=y@example.com"])
def test_location_is_the_users_path_with_the_email_as_written_and_it_resolves(chalice_client, email):
    # WHEN a user whose address holds characters legal in a URL path is created
    response = post(chalice_client, "/users", {**USER, "email": email.upper()})
    # THEN Location is literally /users/<email> (lower-cased) and following it finds the user
    assert response.status_code == 201
    assert response.headers["Location"] == f"/users/{email}"
    found = chalice_client.http.get(response.headers["Location"])
    assert found.status_code == 200 and found.json_body["email"] == email


def test_location_escapes_only_what_a_path_segment_cannot_hold(chalice_client):
    response = post(chalice_client, "/users", {**USER, "email": "a/b?c%d@example.com"})
    assert response.status_code == 201
    assert response.headers["Location"] == "/users/a%2Fb%3Fc%25d@example.com"
    assert chalice_client.http.get(response.headers["Location"]).json_body["email"] == "a/b?c%d@example.com"


def through_api_gateway(event: dict[str, Any]) -> dict[str, Any]:
    """The deployed path: API Gateway's proxy event straight into the Lambda handler Chalice deploys."""
    from app import app

    return app(event, None)


@pytest.mark.parametrize("stage", ["api", "v2"])
def test_behind_api_gateway_location_carries_the_stage_and_resolves_there(aws, stage):
    # WHEN the client calls https://…/<stage>/users and https://…/<stage>/orders
    user = through_api_gateway(api_gateway_event("POST", "/users", "/users", json.dumps(USER), stage=stage))
    order = through_api_gateway(api_gateway_event("POST", "/orders", "/orders", json.dumps(ORDER), stage=stage))

    # THEN each Location is under the stage, where the client can follow it
    assert user["statusCode"] == 201, user
    assert user["headers"]["Location"] == f"/{stage}/users/ada@example.com"
    assert order["statusCode"] == 202, order
    order_id = json.loads(order["body"])["id"]
    assert order["headers"]["Location"] == f"/{stage}/orders/{order_id}"
    # AND following it (API Gateway strips the stage again) finds what was created
    path = order["headers"]["Location"].removeprefix(f"/{stage}")
    followed = through_api_gateway(api_gateway_event("GET", "/orders/{id}", path, stage=stage,
                                                     path_parameters={"id": path.rsplit("/", 1)[-1]}))
    assert followed["statusCode"] == 200 and json.loads(followed["body"])["id"] == order_id


def test_locally_location_has_no_prefix(chalice_client):
    # chalice local and the test client fake the request context from the path called: /users, no stage
    assert post(chalice_client, "/users", USER).headers["Location"] == "/users/ada@example.com"
    order = post(chalice_client, "/orders", ORDER)
    assert order.headers["Location"] == f"/orders/{order.json_body['id']}"


def test_a_user_is_answered_with_exactly_the_stored_fields_and_types(chalice_client, aws):
    response = post(chalice_client, "/users", {**USER, "email": "Ada@Example.com", "city": "Zürich ☃"})
    user = response.json_body
    assert set(user) == {"email", "state", "city", "zipcode", "active", "created_at", "updated_at"}
    assert user["zipcode"] == "01234" and user["active"] is True and user["city"] == "Zürich ☃"
    for stamp in ("created_at", "updated_at"):
        assert len(user[stamp]) == 24 and user[stamp].endswith("Z") and user[stamp][10] == "T"
    # AND a patch moves updated_at only
    patched = chalice_client.http.patch("/users/ADA%40example.com", headers=JSON, body='{"active": false}').json_body
    assert patched["active"] is False and patched["created_at"] == user["created_at"]
    assert patched["updated_at"] >= user["updated_at"]


# --- Listing: pagination bounds and opaque tokens -------------------------------------------------

def walk(client: Any, query: str) -> tuple[list[str], int]:
    seen, token, pages = [], None, 0
    while True:
        page = client.http.get(query + (f"&next={token}" if token else ""))
        assert page.status_code == 200, page.body
        seen += [user["email"] for user in page.json_body["items"]]
        pages += 1
        token = page.json_body["next"]
        if token is None:
            return seen, pages


def test_limit_100_and_limit_1_page_through_every_user_of_the_target_table(chalice_client, aws):
    # GIVEN 101 users in the target table only (the list is served from it, not from USERS_TABLE)
    emails = sorted(f"u{i:03d}@example.com" for i in range(101))
    for email in emails:
        put_target(aws, "NY", "Brooklyn", email)
    # WHEN listed with the largest page
    first = chalice_client.http.get("/users?state=NY&city=Brooklyn&limit=100").json_body
    # THEN 100 come first, then the last one
    assert len(first["items"]) == 100 and isinstance(first["next"], str)
    assert [u["email"] for u in chalice_client.http.get(
        f"/users?state=NY&city=Brooklyn&limit=100&next={first['next']}").json_body["items"]] == emails[100:]
    # AND page size 1 also walks them all, each exactly once
    seen, _ = walk(chalice_client, "/users?state=NY&limit=1")
    assert seen == emails
    assert items(aws["UsersTable"]) == []


def test_a_token_reused_with_another_city_is_a_400(chalice_client, aws):
    for email in ("a@example.com", "b@example.com"):
        put_target(aws, "NY", "Brooklyn", email)
        put_target(aws, "NY", "Queens", email)
    token = chalice_client.http.get("/users?state=NY&city=Brooklyn&limit=1").json_body["next"]
    assert token
    response = chalice_client.http.get(f"/users?state=NY&city=Queens&limit=1&next={token}")
    assert response.status_code == 400 and response.json_body["Message"].startswith("next:")
    assert chalice_client.http.get(f"/users?state=NY&limit=1&next={token}").status_code == 400


def test_a_token_is_bound_to_its_exact_state_and_city_even_with_separators_in_them(chalice_client, aws):
    # GIVEN places whose names would run together if joined with a separator
    for email in ("a@example.com", "b@example.com"):
        put_target(aws, "a|b", "c", email)
        put_target(aws, "a", "b|c", email)
    token = chalice_client.http.get("/users?state=a%7Cb&city=c&limit=1").json_body["next"]
    assert token
    # WHEN the token is presented with the other place
    response = chalice_client.http.get(f"/users?state=a&city=b%7Cc&limit=1&next={token}")
    # THEN it is refused, not taken as a position in a different partition
    assert response.status_code == 400 and response.json_body["Message"].startswith("next:")


def test_orders_keep_exact_decimals_in_every_answer(chalice_client, aws):
    created = post(chalice_client, "/orders", '{"name": "n", "items": [{"sku": "A", "quantity": 3, '
                                              '"unit_price": 0.1}, {"sku": "B", "quantity": 1, '
                                              '"unit_price": 12345678901234567890.123456789}]}')
    assert created.status_code == 202
    assert b'"unit_price":0.1}' in created.body and b"12345678901234567890.123456789" in created.body
    order_id = created.json_body["id"]
    assert created.headers["Location"] == f"/orders/{order_id}"
    assert b"12345678901234567890.123456789" in chalice_client.http.get(f"/orders/{order_id}").body
    assert b"12345678901234567890.123456789" in chalice_client.http.get("/orders?status=PENDING").body


# --- The committed `dev` stage, with its own table names, in a moto the test sets up itself ------

def _create_dev_tables(dynamodb: Any) -> None:
    def table(name: str, keys: list[tuple[str, str]], **extra: Any) -> None:
        dynamodb.create_table(
            TableName=name, BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": k, "AttributeType": "S"}
                                  for k in {k for k, _ in keys} | set(extra.pop("more", []))],
            KeySchema=[{"AttributeName": k, "KeyType": t} for k, t in keys], **extra)

    stream = {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    table("stream-pipeline-dev-users", [("email", "HASH")], StreamSpecification=stream)
    table("stream-pipeline-dev-users-by-location", [("state", "HASH"), ("city_email", "RANGE")])
    table("stream-pipeline-dev-orders", [("id", "HASH")], StreamSpecification=stream, more=["status", "created_at"],
          GlobalSecondaryIndexes=[{"IndexName": "status-index", "Projection": {"ProjectionType": "ALL"},
                                   "KeySchema": [{"AttributeName": "status", "KeyType": "HASH"},
                                                 {"AttributeName": "created_at", "KeyType": "RANGE"}]}])


def test_the_committed_dev_stage_serves_the_api_from_its_own_table_names(monkeypatch):
    # GIVEN no stage variables in the process, and the dev stage's tables created by the test itself
    for name in ("USERS_TABLE", "USERS_BY_LOCATION_TABLE", "ORDERS_TABLE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    clients.reset()
    try:
        with mock_aws():
            dynamodb = boto3.client("dynamodb", region_name="us-east-1")
            _create_dev_tables(dynamodb)
            from app import app

            def stream_of(table: str) -> StreamReader:
                return StreamReader(dynamodb.describe_table(TableName=table)["Table"]["LatestStreamArn"])

            users_stream = stream_of("stream-pipeline-dev-users")
            orders_stream = stream_of("stream-pipeline-dev-orders")

            # WHEN the API is driven through Chalice's test client on stage "dev" of the committed config,
            # and the tables' real stream records are handed to the stream functions as Lambda would
            with Client(app, stage_name="dev", project_dir=str(ROOT)) as client:
                created = post(client, "/users", USER)
                client.lambda_.invoke("replicate_users", stream_event(*users_stream.read()))
                listed = client.http.get("/users?state=NY").json_body
                order = post(client, "/orders", ORDER)
                pending = client.http.get("/orders?status=PENDING").json_body
                client.lambda_.invoke("process_orders", stream_event(*orders_stream.read()))
                processed = client.http.get(order.headers["Location"])

            # THEN every answer is right and every write landed in the dev tables
            assert created.status_code == 201 and created.headers["Location"] == "/users/ada@example.com"
            assert listed == {"items": [{"state": "NY", "city": "Brooklyn", "email": "ada@example.com",
                                         "active": True, "city_email": "Brooklyn#ada@example.com"}], "next": None}
            assert order.status_code == 202 and [o["id"] for o in pending["items"]] == [order.json_body["id"]]
            assert processed.json_body["status"] == "PROCESSED" and b'"total":0.3' in processed.body
            assert dynamodb.scan(TableName="stream-pipeline-dev-users")["Count"] == 1
            assert dynamodb.scan(TableName="stream-pipeline-dev-users-by-location")["Count"] == 1
    finally:
        clients.reset()
