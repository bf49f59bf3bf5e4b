"""User storage: USERS_TABLE for writes and reads, USERS_BY_LOCATION_TABLE for listing by place."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from chalicelib.stream.images import plain_item, typed_item


class UserExists(Exception):
    """A user with this email is already stored."""


class UserNotFound(Exception):
    """No user with this email."""


@dataclass
class UserPage:
    """One page of users listed by location, with DynamoDB's typed LastEvaluatedKey."""

    items: list[dict[str, Any]]
    last_key: dict[str, Any] | None


def _is_condition_failure(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


class UsersRepository:
    """The DynamoDB side of the users API; takes its client and table names so tests can swap them."""

    def __init__(self, dynamodb: Any, users_table: str, by_location_table: str):
        self._dynamodb = dynamodb
        self._users_table = users_table
        self._by_location_table = by_location_table

    def create(self, user: dict[str, Any]) -> None:
        """Store a new user; UserExists if the email is taken (one conditional write, no overwrite)."""
        try:
            self._dynamodb.put_item(
                TableName=self._users_table,
                Item=typed_item(user),
                ConditionExpression="attribute_not_exists(email)",
            )
        except ClientError as error:
            if _is_condition_failure(error):
                raise UserExists(user["email"]) from None
            raise

    def get(self, email: str) -> dict[str, Any]:
        """The stored user, or UserNotFound."""
        answer = self._dynamodb.get_item(TableName=self._users_table, Key=typed_item({"email": email}),
                                          ConsistentRead=True)
        if "Item" not in answer:
            raise UserNotFound(email)
        return plain_item(answer["Item"])

    def update(self, email: str, changes: dict[str, Any]) -> dict[str, Any]:
        """Apply `changes` to an existing user and return it; UserNotFound if absent."""
        names = {f"#f{i}": field for i, field in enumerate(changes)}
        values = {f":v{i}": value for i, value in enumerate(changes.values())}
        assignments = ", ".join(f"#f{i} = :v{i}" for i in range(len(changes)))
        try:
            answer = self._dynamodb.update_item(
                TableName=self._users_table,
                Key=typed_item({"email": email}),
                UpdateExpression=f"SET {assignments}",
                ConditionExpression="attribute_exists(email)",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=typed_item(values),
                ReturnValues="ALL_NEW",
            )
        except ClientError as error:
            if _is_condition_failure(error):
                raise UserNotFound(email) from None
            raise
        return plain_item(answer["Attributes"])

    def delete(self, email: str) -> None:
        """Delete the user; UserNotFound if absent."""
        try:
            self._dynamodb.delete_item(
                TableName=self._users_table,
                Key=typed_item({"email": email}),
                ConditionExpression="attribute_exists(email)",
            )
        except ClientError as error:
            if _is_condition_failure(error):
                raise UserNotFound(email) from None
            raise

    def list_by_location(self, state: str, city: str | None, limit: int,
                         start_key: dict[str, Any] | None) -> UserPage:
        """Users of a state (and city) from the replicated table, one page at a time."""
        condition = "#state = :state"
        values: dict[str, Any] = {":state": state}
        names = {"#state": "state"}
        if city is not None:
            condition += " AND begins_with(#ce, :prefix)"
            names["#ce"] = "city_email"
            values[":prefix"] = f"{city}#"
        query: dict[str, Any] = {
            "TableName": self._by_location_table,
            "KeyConditionExpression": condition,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": typed_item(values),
            "Limit": limit,
        }
        if start_key:
            query["ExclusiveStartKey"] = start_key
        try:
            answer = self._dynamodb.query(**query)
        except ClientError as error:
            # A well-formed but foreign token (wrong key values) is the caller's error, not ours.
            if start_key and error.response.get("Error", {}).get("Code") == "ValidationException":
                raise ValueError("next: invalid pagination token") from None
            raise
        items = [plain_item(item) for item in answer.get("Items", [])]
        return UserPage(items, answer.get("LastEvaluatedKey"))
