"""Structured logs: one JSON object per line on stdout, with the invocation's `consumer`, `function` and
`aws_request_id`, and the `eventID` / `messageId` of the record a line is about (`extra={"eventID": ...}`).

Configured once per process from the handler path (`configure`), never at import. The formatter is
Powertools for AWS Lambda's; keys bound per invocation live in a context variable (each thread has its
own), so handlers running in parallel threads (the local stack) never see each other's keys.
Nothing personal goes in: records are named by eventID / messageId, never by image values, message
bodies or users' keys (an e-mail address). The AWS SDK's DEBUG lines are whole requests and responses
(items, message bodies), so its loggers are held at INFO even when the root logger is at DEBUG (Lambda's
AWS_LAMBDA_LOG_LEVEL=DEBUG); a level set on them on purpose (a developer's wire trace) is left alone.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TextIO

LOGGER_NAME = "chalicelib"
FUNCTION_NAME_VARIABLE = "AWS_LAMBDA_FUNCTION_NAME"
KEY_ORDER = ["level", "message", "consumer", "function", "aws_request_id", "timestamp", "location"]
INVOCATION_KEYS = ("consumer", "function", "aws_request_id")
SDK_LOGGERS = ("boto3", "botocore", "s3transfer")

_invocation_keys: ContextVar[dict[str, str]] = ContextVar("invocation_keys", default={})  # noqa: B039 - never mutated
_lock = threading.Lock()
# logger name → (our handler, the handlers it replaced, its former propagate)
_configured: dict[str, tuple[logging.Handler, list[logging.Handler], bool]] = {}
_held: list[str] = []  # SDK loggers `configure` held at INFO


class InvocationKeys(logging.Filter):
    """Adds the keys bound by `invocation` to each record, where the record does not carry them already."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in _invocation_keys.get().items():
            if not hasattr(record, name):
                setattr(record, name, value)
        return True


class StdoutHandler(logging.StreamHandler):
    """Writes to whatever `sys.stdout` is at the time of each line (the local stack captures it per invocation)."""

    @property
    def stream(self) -> TextIO:
        return sys.stdout

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass  # always the current sys.stdout


def json_formatter() -> logging.Formatter:
    """One JSON object per line: level, message, the invocation's keys, UTC timestamp, code location."""
    # Imported on first use, like every capability (components.py): `import app` stays as fast as it was.
    from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

    return LambdaPowertoolsFormatter(log_record_order=list(KEY_ORDER), utc=True, use_rfc3339=True)


def configure(*loggers: logging.Logger | str) -> None:
    """Send `chalicelib`'s log lines (and those of `loggers`, e.g. Chalice's `app.log`) to stdout as JSON.

    Idempotent. Each logger stops propagating, so Lambda's own root handler does not print a line twice.
    """
    names = [LOGGER_NAME, *(item if isinstance(item, str) else item.name for item in loggers)]
    with _lock:
        for name in SDK_LOGGERS:
            sdk = logging.getLogger(name)
            if sdk.level == logging.NOTSET and name not in _held:
                sdk.setLevel(logging.INFO)
                _held.append(name)
        for name in names:
            if name in _configured:
                continue
            logger = logging.getLogger(name)
            handler = StdoutHandler()
            handler.setFormatter(json_formatter())
            handler.addFilter(InvocationKeys())
            # Chalice's app.log comes with a plain-text stdout handler of its own: ours replaces it.
            replaced = list(logger.handlers)
            for existing in replaced:
                logger.removeHandler(existing)
            logger.addHandler(handler)
            if logger.level == logging.NOTSET:
                logger.setLevel(logging.INFO)
            _configured[name] = (handler, replaced, logger.propagate)
            logger.propagate = False


def unconfigure() -> None:
    """Undo `configure` (tests: pytest's caplog listens on the root logger)."""
    with _lock:
        for name, (handler, replaced, propagate) in _configured.items():
            logger = logging.getLogger(name)
            logger.removeHandler(handler)
            for former in replaced:
                logger.addHandler(former)
            logger.propagate = propagate
        _configured.clear()
        for name in _held:
            logging.getLogger(name).setLevel(logging.NOTSET)
        _held.clear()


@contextmanager
def invocation(consumer: str | None, context: Any) -> Iterator[None]:
    """Bind `consumer`, `function` and `aws_request_id` to every line logged in this thread until the block ends."""
    keys = {
        "consumer": consumer,
        "function": os.environ.get(FUNCTION_NAME_VARIABLE) or getattr(context, "function_name", None),
        "aws_request_id": getattr(context, "aws_request_id", None),
    }
    token = _invocation_keys.set({name: str(value) for name, value in keys.items() if value})
    try:
        yield
    finally:
        _invocation_keys.reset(token)
