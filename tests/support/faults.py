"""Call counting and fault injection around real (moto) boto3 clients.

`aws_error` builds an error the way botocore builds it from a real AWS answer: an HTTP error response
(status, headers, body in the service's protocol) goes through botocore's own response parser and error
factory, so the code sees exactly the shape (`Error.Code`, `QueryErrorCode`, `HTTPStatusCode`, the
modeled exception class) AWS would produce.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from typing import Any

import boto3
from botocore.exceptions import ClientError
from botocore.parsers import create_parser


class CallCounter:
    """Counts API operations made through a boto3 client (`counter["BatchWriteItem"]`)."""

    def __init__(self, client: Any):
        self.calls: Counter[str] = Counter()
        self.requests: list[tuple[str, dict[str, Any]]] = []
        client.meta.events.register("provide-client-params.*.*", self._count)

    def _count(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        self.calls[model.name] += 1
        self.requests.append((model.name, params))

    def __getitem__(self, operation: str) -> int:
        return self.calls[operation]


class FaultyClient:
    """Proxies a real client; `faults[operation]` may rewrite a call (raise, or alter the answer).

    `calls[method]` counts the calls of each faulted method (a fault that raises never reaches the real
    client, so a CallCounter on it would not see them).
    """

    def __init__(self, real: Any, **faults: Callable[..., Any]):
        self._real = real
        self._faults = faults
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        fault = self._faults.get(name)
        real = getattr(self._real, name)
        if fault is None:
            return real

        def faulted(**kwargs: Any) -> Any:
            self.calls[name] += 1
            return fault(real, **kwargs)

        return faulted


def aws_error(service: str, operation: str, code: str, message: str = "injected", status: int = 400,
              query_error: str | None = None) -> ClientError:
    """The ClientError botocore raises for an HTTP error answer of `service` (its real protocol and parser).

    `query_error` is SQS's `x-amzn-query-error` header (`AWS.SimpleQueueService.NonExistentQueue;Sender`).
    """
    client = boto3.client(service, region_name="us-east-1")
    model = client.meta.service_model
    headers = {"x-amzn-requestid": "injected-request"}
    if model.resolved_protocol == "rest-xml":
        body = f"<Error><Code>{code}</Code><Message>{message}</Message></Error>".encode()
    else:
        body = json.dumps({"__type": f"com.amazonaws.{service}#{code}", "message": message}).encode()
        headers["content-type"] = "application/x-amz-json-1.0"
    if query_error:
        headers["x-amzn-query-error"] = query_error
    operation_model = model.operation_model(operation)
    parsed = create_parser(model.resolved_protocol).parse(
        {"status_code": status, "headers": headers, "body": body}, operation_model.output_shape)
    error = parsed["Error"]  # as botocore's client picks the modeled class
    error_class = client.exceptions.from_code(error.get("QueryErrorCode") or error["Code"])
    return error_class(parsed, operation)  # type: ignore[no-any-return]


def raising(error: Exception) -> Callable[..., Any]:
    """A fault that always raises `error` (the call never reaches AWS)."""

    def fault(real: Callable[..., Any], **kwargs: Any) -> Any:
        raise error

    return fault


def raising_first(*errors: Exception) -> Callable[..., Any]:
    """A fault that raises `errors` in turn, then sends the real request."""
    left = list(errors)

    def fault(real: Callable[..., Any], **kwargs: Any) -> Any:
        if left:
            raise left.pop(0)
        return real(**kwargs)

    return fault


def client_error(code: str, message: str = "injected", operation: str = "Operation") -> ClientError:
    """A ClientError as botocore raises it."""
    return ClientError({"Error": {"Code": code, "Message": message}}, operation)


def unprocess_first_attempts(times: int, keep: Callable[[dict[str, Any]], bool] = lambda r: True) -> Callable[..., Any]:
    """A BatchWriteItem fault: the first `times` calls write nothing of the requests `keep` selects."""
    state = {"left": times}

    def fault(real: Callable[..., Any], RequestItems: dict[str, list[dict[str, Any]]], **kw: Any) -> Any:
        if state["left"] <= 0:
            return real(RequestItems=RequestItems, **kw)
        state["left"] -= 1
        unprocessed: dict[str, list[dict[str, Any]]] = {}
        processed: dict[str, list[dict[str, Any]]] = {}
        for table, requests in RequestItems.items():
            for request in requests:
                (unprocessed if keep(request) else processed).setdefault(table, []).append(request)
        if processed:
            real(RequestItems=processed, **kw)
        return {"UnprocessedItems": unprocessed}

    return fault
