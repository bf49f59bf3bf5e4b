"""Where a Lambda invocation meets observability: logging configured once, the invocation's keys bound.

`observed(consumer)` wraps an event handler in app.py; `observe_request` is the API's HTTP middleware.
Metrics are not emitted here but by the consumer shell, which knows the invocation's exact counts
(`chalicelib.observability.metrics.emit`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from chalicelib.observability import logs


def observed[R](consumer: str) -> Callable[[Callable[[Any], R]], Callable[[Any], R]]:
    """Decorate a Chalice event handler: its log lines are JSON carrying `consumer`, `function`, `aws_request_id`."""

    def decorate(handler: Callable[[Any], R]) -> Callable[[Any], R]:
        @functools.wraps(handler)  # Chalice names the function by __name__
        def run(event: Any) -> R:
            logs.configure()
            with logs.invocation(consumer, getattr(event, "context", None)):
                return handler(event)

        return run

    return decorate


def observe_request[R](app_log: Any, request: Any, get_response: Callable[[Any], R]) -> R:
    """HTTP middleware body: the API's log lines (ours and Chalice's `app.log`) are JSON with the request id."""
    logs.configure(app_log)
    with logs.invocation(None, getattr(request, "lambda_context", None)):
        return get_response(request)
