"""What a function prints, as Lambda's log stream would hold it, read back for the developer.

In Lambda, stdout goes to CloudWatch Logs, which turns EMF lines into metrics. Here every handler runs in
this one process, in parallel threads, so `sys.stdout` is replaced by a router that hands each thread's
lines to the invocation running on it (`capture`). Each complete line is then:

- an EMF document (`_aws.CloudWatchMetrics`): kept, and sent to the emulator's CloudWatch after the
  invocation (`MetricsForwarder`: PutMetricData with the same namespace, dimensions, units and timestamp);
- a JSON log line (`level`, `message`): rendered for a person — level, function, consumer, message, ids;
- anything else (a bare `print`): logged as it is.
"""

from __future__ import annotations

import io
import json
import logging
import queue
import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TextIO

logger = logging.getLogger("local_stack.function")

RECORD_IDS = ("eventID", "messageId")
LEVELS = logging.getLevelNamesMapping()


def is_emf(document: Any) -> bool:
    """True for an Embedded Metric Format document."""
    return (isinstance(document, Mapping) and isinstance(document.get("_aws"), Mapping)
            and isinstance(document["_aws"].get("CloudWatchMetrics"), list))


def metric_data(document: Mapping[str, Any]) -> list[tuple[str, list[dict[str, Any]]]]:
    """PutMetricData requests (namespace, MetricData) that say what an EMF document says (pure).

    One datum per metric, dimension set and value (a metric's value may be a number or a list of them).
    """
    timestamp = datetime.fromtimestamp(int(document["_aws"]["Timestamp"]) / 1000, UTC)
    requests = []
    for directive in document["_aws"]["CloudWatchMetrics"]:
        data: list[dict[str, Any]] = []
        dimension_sets = directive.get("Dimensions") or [[]]
        for definition in directive.get("Metrics", []):
            name = definition["Name"]
            values = document.get(name)
            for value in values if isinstance(values, list) else [values]:
                if not isinstance(value, int | float) or isinstance(value, bool):
                    continue  # EMF drops a metric without a numeric value; so do we
                for keys in dimension_sets:
                    data.append({
                        "MetricName": name, "Value": float(value), "Timestamp": timestamp,
                        "Unit": definition.get("Unit", "None"),
                        "Dimensions": [{"Name": key, "Value": str(document[key])} for key in keys],
                    })
        if data:
            requests.append((str(directive["Namespace"]), data))
    return requests


def render(function: str, line: Mapping[str, Any]) -> tuple[int, str]:
    """A JSON log line as (level, text) for a person: function [consumer] message (ids), exception last."""
    consumer = f" [{line['consumer']}]" if line.get("consumer") else ""
    ids = ", ".join(f"{key}={line[key]}" for key in RECORD_IDS if line.get(key))
    text = f"{function}{consumer} {line.get('message', '')}" + (f" ({ids})" if ids else "")
    if line.get("exception"):
        text += "\n" + str(line["exception"])
    return LEVELS.get(str(line.get("level", "INFO")).upper(), logging.INFO), text


class FunctionOutput(io.TextIOBase):
    """One invocation's stdout: lines are rendered as they complete, EMF documents kept for `metrics`."""

    def __init__(self, function: str):
        self.function = function
        self.documents: list[dict[str, Any]] = []
        self._partial = ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self._partial += text
        *lines, self._partial = self._partial.split("\n")
        for line in lines:
            self._line(line)
        return len(text)

    def close_lines(self) -> None:
        """Take what was printed without a final newline as a line of its own."""
        if self._partial:
            line, self._partial = self._partial, ""
            self._line(line)

    def _line(self, line: str) -> None:
        if not line.strip():
            return
        try:
            parsed = json.loads(line)
        except ValueError:
            parsed = None
        if is_emf(parsed):
            self.documents.append(parsed)
        elif isinstance(parsed, Mapping) and "level" in parsed and "message" in parsed:
            level, text = render(self.function, parsed)
            logger.log(level, "%s", text)
        else:
            logger.info("%s: %s", self.function, line)


class StdoutRouter(io.TextIOBase):
    """`sys.stdout` for a process of many functions: a thread inside `capture` writes to its own output."""

    def __init__(self, target: TextIO):
        self.target = target
        self._local = threading.local()

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        output: FunctionOutput | None = getattr(self._local, "output", None)
        if output is None:
            return self.target.write(text)
        return output.write(text)

    def flush(self) -> None:
        self.target.flush()

    @contextmanager
    def capture(self, function: str) -> Iterator[FunctionOutput]:
        """Route this thread's stdout to a new FunctionOutput until the block ends."""
        output = FunctionOutput(function)
        previous = getattr(self._local, "output", None)
        self._local.output = output
        try:
            yield output
        finally:
            self._local.output = previous
            output.close_lines()


_install_lock = threading.Lock()


def install() -> StdoutRouter:
    """Replace `sys.stdout` by a router (once; the same router afterwards)."""
    with _install_lock:
        if not isinstance(sys.stdout, StdoutRouter):
            sys.stdout = StdoutRouter(sys.stdout)
        return sys.stdout


def uninstall() -> None:
    """Give `sys.stdout` back."""
    with _install_lock:
        if isinstance(sys.stdout, StdoutRouter):
            sys.stdout = sys.stdout.target


@contextmanager
def capture(function: str) -> Iterator[FunctionOutput]:
    """This thread's stdout, as one invocation of `function` (routed when the router is installed)."""
    router = sys.stdout
    if isinstance(router, StdoutRouter):
        with router.capture(function) as output:
            yield output
        return
    yield FunctionOutput(function)  # no router installed (an invoker on its own): stdout stays where it is


class MetricsForwarder:
    """Sends EMF documents to CloudWatch (the emulator's) with PutMetricData, as CloudWatch Logs would.

    Synchronous until `start()`; then a thread of its own sends them, so a poller polls again as soon as its
    handler returns (CloudWatch Logs extracts metrics after the invocation, not inside it). `stop()` drains."""

    def __init__(self, cloudwatch: Any):
        self._cloudwatch = cloudwatch
        self.calls = 0
        self._pending: queue.SimpleQueue[tuple[str, list[dict[str, Any]]] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Send from a background thread from now on."""
        self._thread = threading.Thread(target=self._drain, name="metrics-forwarder", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Send what is queued, then stop the thread (back to synchronous)."""
        thread, self._thread = self._thread, None
        if thread is not None:
            self._pending.put(None)
            thread.join(timeout)

    def forward(self, function: str, documents: list[dict[str, Any]]) -> None:
        """PutMetricData for each document (queued once started); a failure is logged, never the function's."""
        if self._thread is not None:
            self._pending.put((function, documents))
        else:
            self._send(function, documents)

    def _drain(self) -> None:
        while (item := self._pending.get()) is not None:
            self._send(*item)

    def _send(self, function: str, documents: list[dict[str, Any]]) -> None:
        for document in documents:
            for namespace, data in metric_data(document):
                for start in range(0, len(data), 1000):  # PutMetricData takes up to 1000 data
                    try:
                        self.calls += 1
                        self._cloudwatch.put_metric_data(Namespace=namespace, MetricData=data[start:start + 1000])
                    except Exception as error:  # the emulator being away must not fail a delivery
                        logger.warning("%s: metrics not forwarded to CloudWatch: %s", function, error)
