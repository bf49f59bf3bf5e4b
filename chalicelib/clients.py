"""Lazily created, cached boto3 clients: none exists at import time, and tests can swap any of them.

botocore honours `AWS_ENDPOINT_URL` itself, which is how every client points at the local stack.
Clients use botocore's `standard` retry mode (throttling and transient errors retried with backoff);
our own adapters add what botocore cannot see: UnprocessedItems, FailedEntryCount, failed SQS entries.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

import boto3
from botocore.config import Config

_lock = threading.Lock()
_cache: dict[tuple[str, str | None, str | None], Any] = {}
_overrides: dict[str, Any] = {}
_learned: dict[tuple[str, ...], Any] = {}

_CONFIG = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=5, read_timeout=30)


def client(service: str) -> Any:
    """Return the shared client for `service` ("dynamodb", "sqs", "events", ...)."""
    if service in _overrides:
        return _overrides[service]
    # Keyed by endpoint and region so a test or the local stack that changes them gets a fresh client.
    key = (service, os.environ.get("AWS_ENDPOINT_URL"), os.environ.get("AWS_DEFAULT_REGION"))
    with _lock:
        found = _cache.get(key)
        if found is None:
            found = boto3.session.Session().client(service, config=_CONFIG)
            _cache[key] = found
        return found


def remember[T](what: str, name: str, learn: Callable[[], T]) -> T:
    """A fact about a resource, learned from AWS once per process (e.g. a queue's size limit): `learn()` runs
    the first time `what` of `name` is asked at this endpoint and region; an error is not remembered."""
    key = _fact(what, name)
    if key not in _learned:
        _learned[key] = learn()
    return _learned[key]


def forget(what: str, name: str) -> None:
    """Learn `what` of `name` again next time (it may have changed since)."""
    _learned.pop(_fact(what, name), None)


def _fact(what: str, name: str) -> tuple[str, ...]:
    return what, name, os.environ.get("AWS_ENDPOINT_URL") or "", os.environ.get("AWS_DEFAULT_REGION") or ""


def override(service: str, replacement: Any) -> None:
    """Use `replacement` for `service` until `reset()` (fault injection, call counting)."""
    _overrides[service] = replacement


def reset() -> None:
    """Forget every cached client, override and learned fact."""
    with _lock:
        _cache.clear()
        _learned.clear()
    _overrides.clear()
