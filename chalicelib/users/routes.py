"""The users API's request handling: validate, store, shape the answer. `app.py` calls these."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import unquote

from chalice import BadRequestError, ConflictError, NotFoundError, Response
from chalice.app import Request

from chalicelib.clock import Clock, iso_utc, utc_now
from chalicelib.field_errors import required
from chalicelib.http_body import json_object
from chalicelib.http_location import location
from chalicelib.pagination import decode_token, encode_token, parse_limit
from chalicelib.users.repository import UserExists, UserNotFound, UsersRepository
from chalicelib.users.validation import InvalidUser, normalize_email, place, validate_new_user, validate_user_patch


class UsersRoutes:
    """Route bodies for /users; the repository and clock are injected."""

    def __init__(self, repository: Callable[[], UsersRepository], clock: Clock = utc_now):
        self._repository = repository
        self._clock = clock

    def create(self, request: Request) -> Response:
        """POST /users → 201 with the stored user and its Location."""
        try:
            user = validate_new_user(json_object(request.raw_body))
        except InvalidUser as error:
            raise BadRequestError(str(error)) from None
        now = iso_utc(self._clock())
        user.update(created_at=now, updated_at=now)
        try:
            self._repository().create(user)
        except UserExists:
            raise ConflictError(f"email: a user with email {json.dumps(user['email'])} already exists") from None
        return Response(body=user, status_code=201, headers={"Location": location(request, "users", user["email"])})

    def get(self, raw_email: str) -> dict[str, Any]:
        """GET /users/{email} → the user, or 404."""
        email = self._path_email(raw_email)
        try:
            return self._repository().get(email)
        except UserNotFound:
            raise NotFoundError(f"email: no user {json.dumps(email)}") from None

    def update(self, raw_email: str, request: Request) -> dict[str, Any]:
        """PATCH /users/{email} → the updated user, 400 or 404."""
        email = self._path_email(raw_email)
        try:
            changes = validate_user_patch(json_object(request.raw_body))
        except InvalidUser as error:
            raise BadRequestError(str(error)) from None
        changes["updated_at"] = iso_utc(self._clock())
        try:
            return self._repository().update(email, changes)
        except UserNotFound:
            raise NotFoundError(f"email: no user {json.dumps(email)}") from None

    def delete(self, raw_email: str) -> Response:
        """DELETE /users/{email} → 204, or 404."""
        email = self._path_email(raw_email)
        try:
            self._repository().delete(email)
        except UserNotFound:
            raise NotFoundError(f"email: no user {json.dumps(email)}") from None
        return Response(body="", status_code=204)

    def list(self, request: Request) -> dict[str, Any]:
        """GET /users?state=S[&city=C][&limit=N][&next=T] → a page from the replicated table."""
        params: Mapping[str, str] = request.query_params or {}
        if not params.get("state"):
            raise BadRequestError(required("state"))
        # The rules of stored places: a longer state could match nothing, and over 2048 bytes DynamoDB would
        # refuse the query itself (a 500).
        try:
            state = place(params["state"], "state")
            city = place(params["city"], "city") if "city" in params else None
        except InvalidUser as error:
            raise BadRequestError(str(error)) from None
        limit = parse_limit(params.get("limit"))
        scope = json.dumps(["users", state, city])  # unambiguous: state and city may hold any separator
        start_key = decode_token(params.get("next"), scope)
        try:
            page = self._repository().list_by_location(state, city, limit, start_key)
        except ValueError as error:
            raise BadRequestError(str(error)) from None
        return {"items": page.items, "next": encode_token(page.last_key, scope)}

    @staticmethod
    def _path_email(raw_email: str) -> str:
        try:
            return normalize_email(unquote(raw_email))
        except InvalidUser as error:
            raise NotFoundError(str(error)) from None
