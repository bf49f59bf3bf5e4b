"""Orders API through chalice.test.Client against moto: 202 at once, exact numbers, reads, listing, and
every malformed input (a 400 naming the field, nothing written)."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

JSON = {"Content-Type": "application/json"}
ITEM = {"sku": "SKU-1", "quantity": 3, "unit_price": 19.99}
VALID = {"name": "Ada's order", "items": [ITEM, {"sku": "SKU-2", "quantity": 1, "unit_price": 0.10}]}


def post(client: Any, body: Any, content_type: str = "application/json") -> Any:
    payload = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return client.http.post("/orders", headers={"Content-Type": content_type}, body=payload)


def orders_in_table(aws: Any) -> list[dict[str, Any]]:
    return boto3.client("dynamodb").scan(TableName=aws["OrdersTable"], ConsistentRead=True)["Items"]


def test_post_stores_a_pending_order_and_answers_202_at_once(chalice_client, aws):
    # WHEN an order is posted
    response = post(chalice_client, VALID)
    # THEN it is accepted, not yet processed, and its numbers come back digit for digit
    assert response.status_code == 202
    order = response.json_body
    assert set(order) == {"id", "name", "items", "status", "created_at"}
    assert order["status"] == "PENDING" and order["name"] == "Ada's order"
    assert response.headers["Location"] == f"/orders/{order['id']}"
    assert response.headers["Content-Type"] == "application/json"
    assert '"unit_price":19.99' in response.body.decode() and '"unit_price":0.1' in response.body.decode()
    assert order["created_at"].endswith("Z")
    # AND the table holds exactly that order, numbers stored exactly
    (item,) = orders_in_table(aws)
    assert item["status"] == {"S": "PENDING"} and item["id"] == {"S": order["id"]}
    assert item["items"]["L"][0]["M"] == {"sku": {"S": "SKU-1"}, "quantity": {"N": "3"}, "unit_price": {"N": "19.99"}}


def test_get_returns_the_stored_order_with_exact_numbers(chalice_client):
    created = post(chalice_client, VALID)
    fetched = chalice_client.http.get(created.headers["Location"])
    assert fetched.status_code == 200
    assert fetched.body == created.body  # same exact JSON text: nothing went through float


def test_items_may_be_omitted(chalice_client):
    response = post(chalice_client, {"name": "empty"})
    assert response.status_code == 202 and response.json_body["items"] == []


def test_prices_beyond_float_precision_keep_every_digit(chalice_client):
    price = "12345678901234567890.123456789"
    body = '{"name": "big", "items": [{"sku": "A", "quantity": 1, "unit_price": ' + price + "}]}"
    response = post(chalice_client, body)
    assert response.status_code == 202
    assert f'"unit_price":{price}' in chalice_client.http.get(response.headers["Location"]).body.decode()


def test_each_post_is_a_new_order(chalice_client, aws):
    ids = {post(chalice_client, VALID).json_body["id"] for _ in range(3)}
    assert len(ids) == 3 and len(orders_in_table(aws)) == 3


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ("{not json", "body"),
        ("[1, 2]", "body"),
        ('"just a string"', "body"),
        ("", "body"),
        ("null", "body"),
        ({"items": [ITEM]}, "name"),
        ({**VALID, "name": ""}, "name"),
        ({**VALID, "name": "   "}, "name"),
        ({**VALID, "name": "n" * 201}, "name"),
        ({**VALID, "name": 42}, "name"),
        ({**VALID, "name": None}, "name"),
        ({**VALID, "total": 5}, "total"),
        ({**VALID, "status": "PROCESSED"}, "status"),
        ({**VALID, "id": "mine"}, "id"),
        ({**VALID, "items": {"sku": "A"}}, "items"),
        ({**VALID, "items": "A"}, "items"),
        ({**VALID, "items": None}, "items"),
        ({**VALID, "items": [ITEM] * 101}, "items"),
        ({**VALID, "items": [ITEM, ITEM, 5]}, "items[2]"),
        ({**VALID, "items": [ITEM, ITEM, {**ITEM, "quantity": 0}]}, "items[2].quantity"),
        ({**VALID, "items": [{**ITEM, "quantity": -2}]}, "items[0].quantity"),
        ({**VALID, "items": [{**ITEM, "quantity": 1.5}]}, "items[0].quantity"),
        ('{"name": "n", "items": [{"sku": "A", "quantity": 2.0, "unit_price": 1}]}', "items[0].quantity"),
        ('{"name": "n", "items": [{"sku": "A", "quantity": 2e0, "unit_price": 1}]}', "items[0].quantity"),
        ({**VALID, "items": [{**ITEM, "quantity": True}]}, "items[0].quantity"),
        ({**VALID, "items": [{**ITEM, "quantity": "3"}]}, "items[0].quantity"),
        ({**VALID, "items": [{"sku": "A", "unit_price": 1}]}, "items[0].quantity"),
        ({**VALID, "items": [{**ITEM, "unit_price": -0.01}]}, "items[0].unit_price"),
        ({**VALID, "items": [{**ITEM, "unit_price": "19.99"}]}, "items[0].unit_price"),
        ({**VALID, "items": [{**ITEM, "unit_price": None}]}, "items[0].unit_price"),
        ({**VALID, "items": [{**ITEM, "unit_price": False}]}, "items[0].unit_price"),
        ('{"name": "n", "items": [{"sku": "A", "quantity": 1, "unit_price": NaN}]}', "items[0].unit_price"),
        ('{"name": "n", "items": [{"sku": "A", "quantity": 1, "unit_price": Infinity}]}', "items[0].unit_price"),
        ('{"name": "n", "items": [{"sku": "A", "quantity": 1, "unit_price": 1e400}]}', "items[0].unit_price"),
        ({**VALID, "items": [{"quantity": 1, "unit_price": 1}]}, "items[0].sku"),
        ({**VALID, "items": [{**ITEM, "sku": ""}]}, "items[0].sku"),
        ({**VALID, "items": [{**ITEM, "sku": 12}]}, "items[0].sku"),
        ({**VALID, "items": [{**ITEM, "sku": "s" * 101}]}, "items[0].sku"),
        ({**VALID, "items": [{**ITEM, "gift": True}]}, "items[0].gift"),
    ],
)
def test_every_invalid_body_is_a_400_naming_the_field_and_writes_nothing(chalice_client, aws, body, field):
    # WHEN an invalid order is posted
    response = post(chalice_client, body)
    # THEN it is refused with a message that starts with the offending field, and nothing is stored
    assert response.status_code == 400, response.body
    assert response.json_body["Code"] == "BadRequestError"
    assert response.json_body["Message"].startswith(f"{field}:"), response.json_body["Message"]
    assert orders_in_table(aws) == []


def test_the_quantity_message_says_what_is_expected(chalice_client):
    response = post(chalice_client, {**VALID, "items": [ITEM, ITEM, {**ITEM, "quantity": 0}]})
    assert response.json_body["Message"] == "items[2].quantity: must be an integer >= 1, got 0"


def test_a_body_that_is_not_json_is_415_and_writes_nothing(chalice_client, aws):
    response = post(chalice_client, "name=ada", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415
    assert post(chalice_client, json.dumps(VALID), content_type="text/plain").status_code == 415
    assert orders_in_table(aws) == []


@pytest.mark.parametrize("order_id", ["0" * 32, "no-such-order", "%2F..%2Fetc", "%E2%9C%93", "x" * 3000, "%20"])
def test_get_of_an_unknown_id_of_any_shape_is_404(chalice_client, order_id):
    response = chalice_client.http.get(f"/orders/{order_id}")
    assert response.status_code == 404
    assert response.json_body["Message"].startswith("id:")


def list_orders(client: Any, query: str) -> Any:
    return client.http.get(f"/orders?{query}")


def test_listing_by_status_pages_through_every_order_oldest_first(chalice_client):
    # GIVEN five pending orders
    created = [post(chalice_client, {**VALID, "name": f"order {n}"}).json_body for n in range(5)]
    # WHEN they are listed two at a time
    seen: list[dict[str, Any]] = []
    query = "status=PENDING&limit=2"
    pages = 0
    while True:
        response = list_orders(chalice_client, query)
        assert response.status_code == 200
        page = response.json_body
        assert len(page["items"]) <= 2
        seen.extend(page["items"])
        pages += 1
        if page["next"] is None:
            break
        query = f"status=PENDING&limit=2&next={page['next']}"
    # THEN every order appears once, in created_at order, with exact numbers
    assert sorted(o["id"] for o in seen) == sorted(o["id"] for o in created)
    assert [o["created_at"] for o in seen] == sorted(o["created_at"] for o in seen)
    assert pages >= 3
    assert all(o["items"][0]["unit_price"] == 19.99 for o in seen)


def test_listing_a_status_with_no_orders_is_empty(chalice_client):
    post(chalice_client, VALID)
    response = list_orders(chalice_client, "status=FAILED")
    assert response.status_code == 200 and response.json_body == {"items": [], "next": None}


def test_the_default_page_holds_fifty(chalice_client, aws):
    dynamodb = boto3.client("dynamodb")
    for n in range(51):
        dynamodb.put_item(TableName=aws["OrdersTable"], Item={
            "id": {"S": f"o-{n:02d}"}, "name": {"S": "n"}, "items": {"L": []}, "status": {"S": "PENDING"},
            "created_at": {"S": f"2026-11-22T10:00:{n:02d}.000Z"}})
    first = list_orders(chalice_client, "status=PENDING").json_body
    assert [o["id"] for o in first["items"]] == [f"o-{n:02d}" for n in range(50)]
    rest = list_orders(chalice_client, f"status=PENDING&next={first['next']}").json_body
    assert [o["id"] for o in rest["items"]] == ["o-50"] and rest["next"] is None


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("", "status"),
        ("status=", "status"),
        ("status=DONE", "status"),
        ("status=pending", "status"),
        ("status=PENDING&limit=0", "limit"),
        ("status=PENDING&limit=101", "limit"),
        ("status=PENDING&limit=ten", "limit"),
        ("status=PENDING&next=not-a-token", "next"),
    ],
)
def test_bad_list_queries_are_400_naming_the_parameter(chalice_client, query, field):
    response = list_orders(chalice_client, query)
    assert response.status_code == 400
    assert response.json_body["Message"].startswith(f"{field}:")


def test_a_token_from_another_status_is_refused(chalice_client):
    for n in range(3):
        post(chalice_client, {**VALID, "name": f"o{n}"})
    token = list_orders(chalice_client, "status=PENDING&limit=1").json_body["next"]
    assert token
    response = list_orders(chalice_client, f"status=PROCESSED&next={token}")
    assert response.status_code == 400 and response.json_body["Message"].startswith("next:")
