"""Route stream records to handlers registered per event type, isolating each record's failure.

    dispatcher = StreamDispatcher("replication")

    @dispatcher.on_insert
    def put(record: StreamRecord) -> list[TargetWrite]: ...

    report = dispatcher.dispatch(event["Records"])

Handlers run in stream order. Whatever a handler returns is kept in the report (batch consumers plan
their writes that way); an exception marks only that record as failed, and the others go on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from chalicelib.stream.record import EventName, MalformedRecord, StreamRecord

logger = logging.getLogger(__name__)

Handler = Callable[[StreamRecord], Any]
H = TypeVar("H", bound=Handler)


@dataclass(frozen=True)
class RecordOutcome:
    """A record every handler accepted, with what each handler returned (in registration order)."""

    record: StreamRecord
    results: tuple[Any, ...]


@dataclass(frozen=True)
class RecordFailure:
    """A record that could not be handled: the raw record, why, and the exception."""

    raw: Any
    reason: str
    error: BaseException
    record: StreamRecord | None = None

    @property
    def sequence_number(self) -> str:
        """The record's sequence number, when it has one."""
        return self.record.sequence_number if self.record is not None else ""


@dataclass
class DispatchReport:
    """What happened to each record of a batch, in stream order."""

    outcomes: list[RecordOutcome] = field(default_factory=list)
    failures: list[RecordFailure] = field(default_factory=list)

    def batch_item_failures(self) -> dict[str, list[dict[str, str]]]:
        """Lambda's partial-batch response naming the first failed record (streams retry from it)."""
        failed = [f.sequence_number for f in self.failures if f.sequence_number]
        return {"batchItemFailures": [{"itemIdentifier": failed[0]}] if failed else []}


class HandlerError(Exception):
    """Raise from a handler to fail a record with a precise, human `reason`."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class StreamDispatcher:
    """Holds handlers per event type and applies them to batches of raw Lambda stream records."""

    def __init__(self, name: str = "stream"):
        self.name = name
        self._handlers: dict[EventName, list[Handler]] = {kind: [] for kind in EventName}

    def on(self, *kinds: EventName) -> Callable[[H], H]:
        """Register a handler for several event types at once."""

        def register(handler: H) -> H:
            for kind in kinds:
                self._handlers[kind].append(handler)
            return handler

        return register

    def on_insert(self, handler: H) -> H:
        """Register `handler` for INSERT records."""
        return self.on(EventName.INSERT)(handler)

    def on_modify(self, handler: H) -> H:
        """Register `handler` for MODIFY records."""
        return self.on(EventName.MODIFY)(handler)

    def on_remove(self, handler: H) -> H:
        """Register `handler` for REMOVE records."""
        return self.on(EventName.REMOVE)(handler)

    def dispatch(self, raw_records: Iterable[Any]) -> DispatchReport:
        """Run the handlers on every record in order; one record's failure never stops the rest."""
        report = DispatchReport()
        for raw in raw_records:
            try:
                record = StreamRecord(raw)
            except MalformedRecord as error:
                report.failures.append(RecordFailure(raw, f"malformed stream record: {error}", error))
                continue
            kind = record.event_name
            if kind is None:  # streams emit only these three: anything else is a malformed record, kept as one
                unknown = MalformedRecord(f"unknown eventName {record.event_name_text[:40]!r}")
                report.failures.append(RecordFailure(raw, f"malformed stream record: {unknown}", unknown, record))
                continue
            self._run(record, self._handlers[kind], report)
        return report

    def _run(self, record: StreamRecord, handlers: list[Handler], report: DispatchReport) -> None:
        results = []
        for handler in handlers:
            try:
                results.append(handler(record))
            except HandlerError as error:
                report.failures.append(RecordFailure(record.raw, error.reason, error, record))
                return
            except MalformedRecord as error:
                report.failures.append(RecordFailure(record.raw, f"malformed stream record: {error}", error, record))
                return
            except Exception as error:  # isolation: one record's bug must not sink the batch
                logger.exception("%s: handler %s failed on a record", self.name, getattr(handler, "__name__", handler),
                                 extra={"eventID": record.event_id})
                report.failures.append(RecordFailure(record.raw, f"handler error: {error}", error, record))
                return
        report.outcomes.append(RecordOutcome(record, tuple(results)))

