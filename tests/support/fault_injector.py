"""One fault injector for every adapter: the clients `chalicelib.clients` hands out are wrapped, so the batch
writer, the publisher, the dead-letter queue, the source queue, the order job and the letter store all meet
the same faults at the same rate.

Each call of a faultable operation draws once (seeded, so a run is reproducible). A drawn fault is one of:

- `throttling`: the request fails with the service's throttling error (botocore's real error shape);
- `connection`: the request never reaches the service (`EndpointConnectionError` / `ReadTimeoutError`);
- `unprocessed`: BatchWriteItem writes a random part and returns the rest as UnprocessedItems;
- `entry_failures`: PutEvents publishes a random part; the rest come back as failed entries;
- `dlq_refuses`: a SendMessageBatch to a dead-letter queue fails (throttled: its letters are not stored);
- `systemic`: every faultable call fails with AccessDeniedException while `systemic_calls` says so (a bad
  deploy for a period of calls), then never again (fixed).

Requests that are not the adapters' (stream reads, test set-up) use plain boto3 clients and see no fault.
`stop()` ends every fault (the faults are fixed; redrive and verify then run against healthy services).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import EndpointConnectionError, ReadTimeoutError

from chalicelib import clients
from tests.support.faults import aws_error

FAULTS = ("throttling", "connection", "unprocessed", "entry_failures", "dlq_refuses", "systemic")

# The operations the adapters make, by service, and the throttling error each service answers with.
OPERATIONS = {
    "dynamodb": {"BatchWriteItem": "batch_write_item", "UpdateItem": "update_item", "GetItem": "get_item"},
    "events": {"PutEvents": "put_events"},
    "sqs": {"SendMessageBatch": "send_message_batch", "DeleteMessageBatch": "delete_message_batch"},
    "s3": {"PutObject": "put_object"},
}
THROTTLING = {"dynamodb": ("ProvisionedThroughputExceededException", 400),
              "events": ("ThrottlingException", 400),
              "sqs": ("RequestThrottled", 403),
              "s3": ("SlowDown", 503)}
SQS_QUERY_ERRORS = {"RequestThrottled": "AWS.SimpleQueueService.RequestThrottled;Sender",
                    "AccessDeniedException": "AccessDenied;Sender"}


@dataclass
class FaultPlan:
    """What to inject: `rate` of faultable calls fail, drawn among `kinds`; `systemic_calls` = (first, last)
    faultable call numbers during which everything is AccessDenied; `dlq_urls` name the dead-letter queues."""

    rate: float = 0.3
    kinds: tuple[str, ...] = ("throttling", "connection", "unprocessed", "entry_failures", "dlq_refuses")
    systemic_calls: tuple[int, int] | None = None
    dlq_urls: tuple[str, ...] = ()
    seed: int = 17


@dataclass
class FaultInjector:
    """Counts every fault it injected (`injected[kind]`) and every call it saw (`calls[operation]`)."""

    plan: FaultPlan
    injected: Counter[str] = field(default_factory=Counter)
    calls: Counter[str] = field(default_factory=Counter)
    active: bool = True
    _random: random.Random = field(init=False)
    _faultable: int = 0

    def __post_init__(self) -> None:
        self._random = random.Random(self.plan.seed)

    def install(self, services: Iterable[str] = tuple(OPERATIONS)) -> FaultInjector:
        """Wrap the shared client of each service (until `clients.reset()`)."""
        for service in services:
            clients.override(service, FaultyClient(clients.client(service), service, self))
        return self

    def stop(self) -> None:
        """The faults are fixed: every call goes through untouched from now on."""
        self.active = False

    def call(self, service: str, operation: str, real: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
        """Make one call of an adapter, with whatever fault this call draws."""
        self.calls[operation] += 1
        if not self.active:
            return real(**kwargs)
        self._faultable += 1
        window = self.plan.systemic_calls
        if "systemic" in self.plan.kinds and window and window[0] <= self._faultable <= window[1]:
            self.injected["systemic"] += 1
            raise _error(service, operation, "AccessDeniedException", 400)
        if self._random.random() >= self.plan.rate:
            return real(**kwargs)
        kind = self._draw(service, operation, kwargs)
        if kind is None:
            return real(**kwargs)
        self.injected[kind] += 1
        if kind == "throttling" or kind == "dlq_refuses":
            code, status = THROTTLING[service]
            raise _error(service, operation, code, status)
        if kind == "connection":
            if self._random.random() < 0.5:
                raise EndpointConnectionError(endpoint_url=f"https://{service}.us-east-1.amazonaws.com/")
            raise ReadTimeoutError(endpoint_url=f"https://{service}.us-east-1.amazonaws.com/")
        if kind == "unprocessed":
            return self._unprocessed(real, kwargs)
        return self._failed_entries(real, kwargs)

    def _draw(self, service: str, operation: str, kwargs: dict[str, Any]) -> str | None:
        to_dlq = operation == "SendMessageBatch" and kwargs.get("QueueUrl") in self.plan.dlq_urls
        if to_dlq:  # a dead-letter queue meets exactly its own fault, so its refusals are counted apart
            return "dlq_refuses" if "dlq_refuses" in self.plan.kinds else None
        possible = [kind for kind in self.plan.kinds if kind in ("throttling", "connection")
                    or (kind == "unprocessed" and operation == "BatchWriteItem")
                    or (kind == "entry_failures" and operation == "PutEvents")]
        return self._random.choice(possible) if possible else None

    def _unprocessed(self, real: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
        taken: dict[str, list[Any]] = {}
        left: dict[str, list[Any]] = {}
        for table, requests in kwargs["RequestItems"].items():
            for request in requests:
                (left if self._random.random() < 0.5 else taken).setdefault(table, []).append(request)
        if not left:  # at least one write is left unprocessed, or this was no fault
            table, requests = next(iter(taken.items()))
            left[table] = [requests.pop()]
            if not requests:
                del taken[table]
        answer = real(**{**kwargs, "RequestItems": taken}) if taken else {"UnprocessedItems": {}}
        answer.setdefault("UnprocessedItems", {})
        for table, requests in left.items():
            answer["UnprocessedItems"].setdefault(table, []).extend(requests)
        return answer

    def _failed_entries(self, real: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
        entries = kwargs["Entries"]
        failed = {i for i in range(len(entries)) if self._random.random() < 0.5} or {len(entries) - 1}
        kept = [entry for i, entry in enumerate(entries) if i not in failed]
        published = iter(real(**{**kwargs, "Entries": kept})["Entries"]) if kept else iter(())
        answer = []
        for i in range(len(entries)):  # PutEvents answers entry by entry, in the order they were sent
            answer.append({"ErrorCode": "ThrottlingException", "ErrorMessage": "injected"} if i in failed
                          else next(published))
        return {"FailedEntryCount": sum("ErrorCode" in entry for entry in answer), "Entries": answer}


class FaultyClient:
    """A real client whose faultable operations go through the injector; everything else is the client's."""

    def __init__(self, real: Any, service: str, injector: FaultInjector):
        self._real = real
        self._service = service
        self._injector = injector
        self._methods = {method: operation for operation, method in OPERATIONS.get(service, {}).items()}

    def __getattr__(self, name: str) -> Any:
        real = getattr(self._real, name)
        operation = self._methods.get(name)
        if operation is None:
            return real
        return lambda **kwargs: self._injector.call(self._service, operation, real, kwargs)


_errors: dict[tuple[str, str, str], Any] = {}


def _error(service: str, operation: str, code: str, status: int) -> Exception:
    """A fresh botocore error of the real shape (building the first one parses a real answer: cached)."""
    key = (service, operation, code)
    if key not in _errors:
        _errors[key] = aws_error(service, operation, code, status=status, query_error=SQS_QUERY_ERRORS.get(code)
                                 if service == "sqs" else None)
    template = _errors[key]
    return type(template)(template.response, template.operation_name)  # type: ignore[no-any-return]
