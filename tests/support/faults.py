"""Call counting and fault injection around real (moto) boto3 clients."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError


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
    """Proxies a real client; `faults[operation]` may rewrite a call (raise, or alter the answer)."""

    def __init__(self, real: Any, **faults: Callable[..., Any]):
        self._real = real
        self._faults = faults

    def __getattr__(self, name: str) -> Any:
        fault = self._faults.get(name)
        real = getattr(self._real, name)
        if fault is None:
            return real
        return lambda **kwargs: fault(real, **kwargs)


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
