"""What the app reacts to, read from its own registrations (`app.event_sources`), never listed by hand."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from chalice.app import CloudWatchEventConfig, DynamoDBEventConfig, SQSEventConfig


@dataclass(frozen=True)
class StreamSource:
    """An `@app.on_dynamodb_record`: one event source mapping on a DynamoDB stream."""

    name: str
    handler_string: str
    stream_arn: str
    batch_size: int
    starting_position: str
    batching_window: float


@dataclass(frozen=True)
class QueueSource:
    """An `@app.on_sqs_message`: one event source mapping on an SQS queue (by name or ARN)."""

    name: str
    handler_string: str
    queue_name: str
    batch_size: int
    batching_window: float


@dataclass(frozen=True)
class BusSource:
    """An `@app.on_cw_event`: a rule with `event_pattern` on the default event bus."""

    name: str
    handler_string: str
    event_pattern: dict[str, Any]


Source = StreamSource | QueueSource | BusSource


@dataclass(frozen=True)
class Discovery:
    """The sources the local stack runs, and the registrations it cannot run (named, so it can say so)."""

    sources: tuple[Source, ...]
    unsupported: tuple[str, ...]


def discover(event_sources: Iterable[Any]) -> Discovery:
    """Chalice event source configs → sources the local stack polls."""
    sources: list[Source] = []
    unsupported: list[str] = []
    for config in event_sources:
        if isinstance(config, DynamoDBEventConfig):
            sources.append(StreamSource(config.name, config.handler_string, config.stream_arn, config.batch_size,
                                        config.starting_position, float(config.maximum_batching_window_in_seconds)))
        elif isinstance(config, SQSEventConfig):
            sources.append(QueueSource(config.name, config.handler_string, queue_name_of(config),
                                       config.batch_size, float(config.maximum_batching_window_in_seconds)))
        elif isinstance(config, CloudWatchEventConfig):
            sources.append(BusSource(config.name, config.handler_string, dict(config.event_pattern)))
        else:
            unsupported.append(f"{config.name} ({type(config).__name__})")
    return Discovery(tuple(sources), tuple(unsupported))


def queue_name_of(config: SQSEventConfig) -> str:
    """The queue's name, from `queue` or the last part of `queue_arn`."""
    if config.queue:
        return config.queue
    if config.queue_arn:
        return config.queue_arn.rsplit(":", 1)[-1]
    raise ValueError(f"{config.name}: on_sqs_message without queue or queue_arn")


def resolve_handler(handler_string: str) -> Callable[[dict[str, Any], Any], Any]:
    """`app.replicate_users` → the object Lambda calls with (event, context)."""
    module_name, _, attribute = handler_string.rpartition(".")
    return getattr(importlib.import_module(module_name), attribute)
