"""Stage configuration, read from the environment variables the SPEC names (never at import time)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

DEFAULT_EVENT_SOURCE = "stream-pipeline.users"
DEFAULT_FANOUT_MAX_ATTEMPTS = 3
DEFAULT_METRICS_NAMESPACE = "stream-pipeline"


class ConfigurationError(RuntimeError):
    """A required environment variable is missing or invalid."""


@dataclass(frozen=True)
class Settings:
    users_table: str
    users_stream_arn: str
    users_by_location_table: str
    device_metadata_table: str
    ingest_queue: str
    ingest_dlq_url: str
    orders_table: str
    orders_stream_arn: str
    event_bus_name: str
    event_source: str
    stream_dlq_url: str
    fanout_max_attempts: int
    metrics_namespace: str = DEFAULT_METRICS_NAMESPACE  # CloudWatch namespace of the consumers' EMF metrics

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Build settings from `env` (default `os.environ`), failing loudly on what is missing."""
        env = os.environ if env is None else env

        def need(name: str) -> str:
            value = env.get(name, "").strip()
            if not value:
                raise ConfigurationError(f"environment variable {name} is not set")
            return value

        attempts_text = env.get("FANOUT_MAX_ATTEMPTS", "").strip() or str(DEFAULT_FANOUT_MAX_ATTEMPTS)
        try:
            attempts = int(attempts_text)
        except ValueError:
            raise ConfigurationError(f"FANOUT_MAX_ATTEMPTS must be an integer, got {attempts_text!r}") from None
        if attempts < 1:
            raise ConfigurationError(f"FANOUT_MAX_ATTEMPTS must be at least 1, got {attempts}")
        return cls(
            users_table=need("USERS_TABLE"),
            users_stream_arn=need("USERS_STREAM_ARN"),
            users_by_location_table=need("USERS_BY_LOCATION_TABLE"),
            device_metadata_table=need("DEVICE_METADATA_TABLE"),
            ingest_queue=need("INGEST_QUEUE"),
            ingest_dlq_url=need("INGEST_DLQ_URL"),
            orders_table=need("ORDERS_TABLE"),
            orders_stream_arn=need("ORDERS_STREAM_ARN"),
            event_bus_name=need("EVENT_BUS_NAME"),
            event_source=env.get("EVENT_SOURCE", "").strip() or DEFAULT_EVENT_SOURCE,
            stream_dlq_url=need("STREAM_DLQ_URL"),
            fanout_max_attempts=attempts,
            metrics_namespace=env.get("METRICS_NAMESPACE", "").strip() or DEFAULT_METRICS_NAMESPACE,
        )


API_AUTH_IAM = "iam"
API_AUTH_NONE = "none"


def api_auth(env: Mapping[str, str] | None = None) -> str:
    """`API_AUTH`: "iam" (SigV4 on every route) or "none" (open, the dev stage).

    Unset or blank is "iam": a stage that says nothing is protected. Any other value is a ConfigurationError,
    so a typo (`IAM`, `aim`) fails the import loudly instead of publishing an open API.
    """
    env = os.environ if env is None else env
    value = env.get("API_AUTH", "").strip() or API_AUTH_IAM
    if value not in (API_AUTH_IAM, API_AUTH_NONE):
        raise ConfigurationError(f"API_AUTH must be {API_AUTH_IAM!r} (SigV4 on every route) or {API_AUTH_NONE!r} "
                                 f"(open), got {value!r}")
    return value
