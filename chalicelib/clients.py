"""Lazily created, cached boto3 clients: none exists at import time, and tests can swap any of them.

botocore honours `AWS_ENDPOINT_URL` itself, which is how every client points at the local stack.
Clients use botocore's `standard` retry mode (throttling and transient errors retried with backoff);
our own adapters add what botocore cannot see: UnprocessedItems, FailedEntryCount, failed SQS entries.
"""

from __future__ import annotations

import ipaddress
import os
import threading
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import boto3
import botocore.session
from botocore.config import Config

from chalicelib.config import stage_region

_lock = threading.Lock()
_cache: dict[tuple[str, str | None, str | None], Any] = {}
_overrides: dict[str, Any] = {}
_learned: dict[tuple[str, ...], Any] = {}

_CONFIG = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=5, read_timeout=30)
EMULATOR_CREDENTIALS = {"aws_access_key_id": "local", "aws_secret_access_key": "local"}


def client(service: str) -> Any:
    """Return the shared client for `service` ("dynamodb", "sqs", "events", ...)."""
    if service in _overrides:
        return _overrides[service]
    # Keyed by endpoint and region so a test or the local stack that changes them gets a fresh client.
    key = (service, os.environ.get("AWS_ENDPOINT_URL"), os.environ.get("AWS_DEFAULT_REGION"))
    with _lock:
        found = _cache.get(key)
        if found is None:
            found = _session().client(service, config=_CONFIG)
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


def is_loopback(endpoint: str | None) -> bool:
    """True when `endpoint` is a URL on this machine (127.0.0.0/8, ::1, localhost): never an AWS endpoint."""
    host = urlsplit(endpoint or "").hostname
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def emulator_defaults(env: Mapping[str, str], configured_region: str | None,
                      has_credentials: bool) -> dict[str, str]:
    """What a session lacks to talk to an emulator on this machine: the stage's region and dummy credentials,
    each only when nothing is configured, and nothing at all unless `AWS_ENDPOINT_URL` is a loopback URL.

    This is what `chalice local --stage dev` against the local stack needs with only AWS_ENDPOINT_URL set.
    It lives here, not in local_stack (which chalicelib must not know), because it needs nothing of it:
    botocore's own endpoint variable and the stage's ARNs. A loopback endpoint is never AWS, so these
    defaults cannot reach an account; for AWS (no endpoint, or any other host) botocore decides alone.
    """
    if not is_loopback(env.get("AWS_ENDPOINT_URL")):
        return {}
    defaults: dict[str, str] = {}
    region = stage_region(env)
    if configured_region is None and region:
        defaults["region_name"] = region
    if not has_credentials:
        defaults.update(EMULATOR_CREDENTIALS)
    return defaults


def _session() -> boto3.session.Session:
    if not is_loopback(os.environ.get("AWS_ENDPOINT_URL")):
        return boto3.session.Session()
    core = botocore.session.get_session()
    # An emulator on this machine needs no instance role: never probe the metadata service (off-machine) for one.
    core.get_component("credential_provider").remove("iam-role")
    defaults = emulator_defaults(os.environ, core.get_config_variable("region"), core.get_credentials() is not None)
    return boto3.session.Session(botocore_session=core, **defaults)


def override(service: str, replacement: Any) -> None:
    """Use `replacement` for `service` until `reset()` (fault injection, call counting)."""
    _overrides[service] = replacement


def reset() -> None:
    """Forget every cached client, override and learned fact."""
    with _lock:
        _cache.clear()
        _learned.clear()
    _overrides.clear()
