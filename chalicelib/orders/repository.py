"""Order storage in ORDERS_TABLE: create, read, list by status (status-index), and conditional transitions.

`calls` counts DynamoDB requests made through this adapter (tests and benchmarks read it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from chalicelib.stream.images import plain_item, typed_item

STATUS_INDEX = "status-index"
# DynamoDB refuses a partition key value over 2048 bytes; such an id cannot name an order.
MAX_ID_BYTES = 2048


class OrderNotFound(Exception):
    """No order with this id."""


class OrderExists(Exception):
    """An order with this id is already stored (an id collision, never expected with uuid4)."""


@dataclass
class OrderPage:
    """One page of orders of one status, oldest first, with DynamoDB's typed LastEvaluatedKey."""

    items: list[dict[str, Any]]
    last_key: dict[str, Any] | None


def _error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


class OrdersRepository:
    """The DynamoDB side of orders; takes its client and table name so tests can swap them."""

    def __init__(self, dynamodb: Any, table: str):
        self._dynamodb = dynamodb
        self._table = table
        self.calls = 0

    def create(self, order: dict[str, Any]) -> None:
        """Store a new order (one conditional PutItem); OrderExists if the id is taken."""
        self.calls += 1
        try:
            self._dynamodb.put_item(TableName=self._table, Item=typed_item(order),
                                    ConditionExpression="attribute_not_exists(id)")
        except ClientError as error:
            if _error_code(error) == "ConditionalCheckFailedException":
                raise OrderExists(order["id"]) from None
            raise

    def get(self, order_id: str) -> dict[str, Any]:
        """The stored order (strongly consistent), or OrderNotFound."""
        if not order_id or len(order_id.encode("utf-8")) > MAX_ID_BYTES:
            raise OrderNotFound(order_id)
        self.calls += 1
        answer = self._dynamodb.get_item(TableName=self._table, Key=typed_item({"id": order_id}),
                                          ConsistentRead=True)
        if "Item" not in answer:
            raise OrderNotFound(order_id)
        return plain_item(answer["Item"])

    def list_by_status(self, status: str, limit: int, start_key: dict[str, Any] | None) -> OrderPage:
        """Orders of `status` through the status-index GSI, by created_at ascending, one page at a time."""
        query: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": STATUS_INDEX,
            "KeyConditionExpression": "#status = :status",
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": typed_item({":status": status}),
            "Limit": limit,
            "ScanIndexForward": True,
        }
        if start_key:
            query["ExclusiveStartKey"] = start_key
        self.calls += 1
        try:
            answer = self._dynamodb.query(**query)
        except ClientError as error:
            # A well-formed but foreign token (wrong key values) is the caller's error, not ours.
            if start_key and _error_code(error) == "ValidationException":
                raise ValueError("next: invalid pagination token") from None
            raise
        return OrderPage([plain_item(item) for item in answer.get("Items", [])], answer.get("LastEvaluatedKey"))

    def transition(self, order_id: str, expected_status: str, changes: dict[str, Any]) -> bool:
        """SET `changes` only while the order's status is `expected_status` (one conditional UpdateItem).

        Returns False when the condition fails: the order moved on already (a redelivered record) or
        no longer exists; the update never creates an item. Other errors propagate to the caller.
        """
        names = {f"#f{i}": field for i, field in enumerate(changes)}
        names["#status"] = "status"
        values = {f":v{i}": value for i, value in enumerate(changes.values())}
        values[":expected"] = expected_status
        assignments = ", ".join(f"#f{i} = :v{i}" for i in range(len(changes)))
        self.calls += 1
        try:
            self._dynamodb.update_item(
                TableName=self._table,
                Key=typed_item({"id": order_id}),
                UpdateExpression=f"SET {assignments}",
                ConditionExpression="#status = :expected",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=typed_item(values),
            )
        except ClientError as error:
            if _error_code(error) == "ConditionalCheckFailedException":
                return False
            raise
        return True
