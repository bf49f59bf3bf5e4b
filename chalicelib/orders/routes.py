"""The orders API's request handling: validate, store PENDING, answer 202 at once; read and list.

Answers are written with `exact_json` because Chalice's own encoder turns Decimal into float
(19.99 would come back as 19.990000000000002 after arithmetic, and totals must be exact).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import unquote

from chalice import BadRequestError, NotFoundError, Response
from chalice.app import Request

from chalicelib import exact_json
from chalicelib.clock import Clock, iso_utc, utc_now
from chalicelib.http_body import json_object
from chalicelib.http_location import location
from chalicelib.orders.repository import OrderNotFound, OrdersRepository
from chalicelib.orders.validation import PENDING, InvalidOrder, parse_status, validate_new_order
from chalicelib.pagination import decode_token, encode_token, parse_limit

JSON_HEADERS = {"Content-Type": "application/json"}


def new_order_id() -> str:
    """A fresh order id: uuid4 as 32 hex digits."""
    return uuid.uuid4().hex


def json_response(body: Any, status_code: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    """A JSON answer whose numbers keep every digit."""
    return Response(body=exact_json.dumps(body), status_code=status_code, headers={**JSON_HEADERS, **(headers or {})})


class OrdersRoutes:
    """Route bodies for /orders; the repository, clock and id source are injected."""

    def __init__(self, repository: Callable[[], OrdersRepository], clock: Clock = utc_now,
                 new_id: Callable[[], str] = new_order_id):
        self._repository = repository
        self._clock = clock
        self._new_id = new_id

    def create(self, request: Request) -> Response:
        """POST /orders → 202 with the PENDING order and its Location; the stream does the work."""
        try:
            fields = validate_new_order(json_object(request.raw_body))
        except InvalidOrder as error:
            raise BadRequestError(str(error)) from None
        order = {"id": self._new_id(), "name": fields["name"], "items": fields["items"],
                 "status": PENDING, "created_at": iso_utc(self._clock())}
        self._repository().create(order)
        return json_response(order, 202, {"Location": location(request, "orders", order["id"])})

    def get(self, raw_id: str) -> Response:
        """GET /orders/{id} → the order as stored (total and processed_at once processed), or 404."""
        order_id = unquote(raw_id)
        try:
            return json_response(self._repository().get(order_id))
        except OrderNotFound:
            raise NotFoundError(f"id: no order {json.dumps(order_id[:100])}") from None

    def list(self, request: Request) -> Response:
        """GET /orders?status=X[&limit=N][&next=T] → a page of orders of X, oldest first."""
        params: Mapping[str, str] = request.query_params or {}
        try:
            status = parse_status(params.get("status"))
        except InvalidOrder as error:
            raise BadRequestError(str(error)) from None
        limit = parse_limit(params.get("limit"))
        scope = f"orders|{status}"
        start_key = decode_token(params.get("next"), scope)
        try:
            page = self._repository().list_by_status(status, limit, start_key)
        except ValueError as error:
            raise BadRequestError(str(error)) from None
        return json_response({"items": page.items, "next": encode_token(page.last_key, scope)})
