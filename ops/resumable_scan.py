"""Whole-table runs that scale out and resume (backfill, verify): which scan segments a process reads, where
each one stands on disk, and the threads that read them page by page.

**Splitting one run across processes or machines.** `--segments S` is the number of scan threads of one
process; `--segment I --total-segments N` makes the process one of N. The table is then scanned as S × N
DynamoDB segments (Scan's `TotalSegments`) and process I reads segments I, I + N, I + 2N, … (those ≡ I mod N),
each in its own thread. Every process of one run passes the same S and N; together they read every item
exactly once. Without `--total-segments` (N = 1) one process reads all S segments.

**Resuming.** A segment's `last_key` (the page's LastEvaluatedKey) advances only after every item of that
page was handled, so a resumed run re-reads at most the pages that were in flight. The checkpoint is
rewritten atomically (temp file + rename), under a lock the threads share, after every page, and removed
when the run completes. Memory is a page per thread, whatever the table's size.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from chalicelib.clock import iso_utc, utc_now
from ops.table_scan import Page, TableScanner


@dataclass(frozen=True)
class ScanShare:
    """The scan segments one process reads: `threads` of them, its share `share` of `shares` processes."""

    threads: int = 4
    share: int = 0
    shares: int = 1

    def __post_init__(self) -> None:
        if self.threads < 1 or self.shares < 1:
            raise ValueError("--segments and --total-segments must be at least 1")
        if not 0 <= self.share < self.shares:
            raise ValueError(f"--segment must be from 0 to {self.shares - 1} (--total-segments {self.shares}), "
                             f"got {self.share}")

    @property
    def total_segments(self) -> int:
        """Scan's TotalSegments: every process's threads together."""
        return self.threads * self.shares

    @property
    def segments(self) -> list[int]:
        """The segments this process reads: those ≡ share (mod shares)."""
        return list(range(self.share, self.total_segments, self.shares))

    def describe(self) -> str:
        if self.shares == 1:
            return f"{self.threads} segment(s)"
        return f"share {self.share} of {self.shares}: segments {', '.join(map(str, self.segments))} " \
               f"of {self.total_segments}"


class CheckpointMismatch(ValueError):
    """The checkpoint on disk belongs to another run (other tables, another share, another verb)."""


@dataclass
class SegmentProgress:
    """Where one scan segment stands, and what handling its pages has counted so far."""

    segment: int
    last_key: dict[str, Any] | None = None
    done: bool = False
    counts: dict[str, int] = field(default_factory=dict)


@dataclass
class ScanCheckpoint:
    """The progress of one run: per scan (e.g. "source", "target") the segments it reads.

    `identity` says what the run is (verb, tables, share, options that change what it counts); a checkpoint
    is resumed only by the same run. `tables_created` says which incarnation of the tables it read: progress
    through tables since deleted and created again (a new local stack, a restored backup) means nothing, so
    such a checkpoint is set aside (`discarded`) and the run starts over. `notes` is small JSON the verb keeps
    beside its counts (verify's examples).
    """

    path: Path
    identity: dict[str, Any]
    total_segments: int
    scans: dict[str, list[SegmentProgress]]
    notes: dict[str, Any] = field(default_factory=dict)
    started_at: str = ""
    tables_created: dict[str, str] = field(default_factory=dict)
    resumed: bool = False
    discarded: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @classmethod
    def open(cls, path: Path, identity: Mapping[str, Any], scans: Sequence[str], share: ScanShare,
             restart: bool = False, tables_created: Mapping[str, str] | None = None) -> ScanCheckpoint:
        """The checkpoint at `path` if one is there (its segments win over `share.threads`), else a fresh one."""
        wanted = json.loads(json.dumps(dict(identity)))  # as it reads back from disk
        created = dict(tables_created or {})
        discarded = False
        if path.exists() and not restart:
            try:
                data = json.loads(path.read_text())
            except ValueError as error:
                raise CheckpointMismatch(f"{path} is not a checkpoint ({error}); use --restart to discard it") \
                    from error
            found = data.get("identity") if isinstance(data, dict) else None
            if found != wanted or set(data.get("scans", {})) != set(scans):
                raise CheckpointMismatch(f"{path} is a checkpoint of {_describe(found)}, not of "
                                         f"{_describe(wanted)}; use --restart to discard it")
            if data.get("tables_created", {}) == created:
                return cls(path, wanted, int(data["total_segments"]),
                           {name: [SegmentProgress(**segment) for segment in segments]
                            for name, segments in data["scans"].items()},
                           dict(data.get("notes") or {}), str(data.get("started_at", "")), created, resumed=True)
            discarded = True
        return cls(path, wanted, share.total_segments,
                   {name: [SegmentProgress(segment) for segment in share.segments] for name in scans},
                   started_at=iso_utc(utc_now()), tables_created=created, discarded=discarded)

    def advance(self, scan: str, index: int, last_key: dict[str, Any] | None, counts: Mapping[str, int],
                notes: Mapping[str, Any] | None = None) -> None:
        """Record a handled page of `scans[scan][index]` (last_key None: the segment is finished) and save."""
        with self._lock:
            state = self.scans[scan][index]
            state.last_key = last_key
            state.done = last_key is None
            for name, value in counts.items():
                state.counts[name] = state.counts.get(name, 0) + value
            if notes is not None:
                self.notes = dict(notes)
            self._save()

    def total(self, name: str, scan: str | None = None) -> int:
        """The sum of counter `name` over the segments (of one scan, or all)."""
        with self._lock:
            return sum(segment.counts.get(name, 0) for scan_name, segments in self.scans.items()
                       if scan is None or scan_name == scan for segment in segments)

    def pending(self) -> list[tuple[str, int]]:
        """(scan, index) of every unfinished segment."""
        return [(scan, i) for scan, segments in self.scans.items() for i, s in enumerate(segments) if not s.done]

    @property
    def complete(self) -> bool:
        return not self.pending()

    def remove(self) -> None:
        """Forget the run (after it completed)."""
        with self._lock:
            self.path.unlink(missing_ok=True)

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        body = {
            "identity": self.identity,
            "started_at": self.started_at,
            "tables_created": self.tables_created,
            "total_segments": self.total_segments,
            "scans": {name: [segment.__dict__ for segment in segments] for name, segments in self.scans.items()},
            "notes": self.notes,
        }
        tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        tmp.write_text(json.dumps(body, indent=1))
        tmp.replace(self.path)


def open_run(path: Path, identity: Mapping[str, Any], scanners: Mapping[str, TableScanner], share: ScanShare,
             restart: bool = False) -> tuple[ScanCheckpoint, dict[str, int]]:
    """Describe the tables (which incarnation, about how many items this share reads) and open the checkpoint."""
    described = {scan: scanner.describe() for scan, scanner in scanners.items()}
    created = {scanners[scan].table: str(table.get("CreationDateTime", "")) for scan, table in described.items()}
    estimates = {scan: int(table.get("ItemCount", 0)) // share.shares for scan, table in described.items()}
    return ScanCheckpoint.open(path, identity, tuple(scanners), share, restart, created), estimates


def _describe(identity: Any) -> str:
    if not isinstance(identity, dict):
        return "an unknown run"
    return ", ".join(f"{name} {value}" for name, value in identity.items())


class PageWorker(Protocol):
    """Handles the pages of one segment thread; `calls` counts its AWS requests."""

    @property
    def calls(self) -> int: ...

    def handle(self, scan: str, page: Page) -> Mapping[str, int]: ...


@dataclass
class RunReport:
    """How a run ended; its counts are the checkpoint's (a resumed run's include what earlier runs counted)."""

    checkpoint: ScanCheckpoint
    errors: list[str] = field(default_factory=list)
    interrupted: bool = False
    calls: int = 0  # AWS requests of this run

    @property
    def complete(self) -> bool:
        return self.checkpoint.complete and not self.errors

    def total(self, name: str) -> int:
        return self.checkpoint.total(name)


class SegmentedRun:
    """Reads every pending segment of a checkpoint in its own thread, handing each page to a worker.

    One failing segment stops the others (each finishes and checkpoints the page in flight); so does Ctrl-C.
    """

    def __init__(self, checkpoint: ScanCheckpoint, scanners: Mapping[str, TableScanner],
                 new_worker: Callable[[], PageWorker], on_items: Callable[[str, int], None] | None = None,
                 notes: Callable[[], Mapping[str, Any]] | None = None):
        self._checkpoint = checkpoint
        self._scanners = scanners
        self._new_worker = new_worker
        self._on_items = on_items or (lambda _scan, _n: None)
        self._notes = notes
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._calls = 0

    def run(self) -> RunReport:
        """Read every pending segment; the checkpoint is removed once the run is complete."""
        outcome = RunReport(self._checkpoint)
        todo = self._checkpoint.pending()
        if todo:
            pool = ThreadPoolExecutor(max_workers=len(todo), thread_name_prefix="segment")
            futures = [pool.submit(self._read_segment, scan, index) for scan, index in todo]
            try:
                for future in futures:
                    error = future.exception()
                    if error is not None:
                        outcome.errors.append(f"{type(error).__name__}: {error}")
            except KeyboardInterrupt:
                outcome.interrupted = True
                self._stop.set()
            finally:
                pool.shutdown(wait=True)
        outcome.calls = self._calls + sum(scanner.calls for scanner in self._scanners.values())
        if outcome.complete:
            self._checkpoint.remove()
        return outcome

    def _read_segment(self, scan: str, index: int) -> None:
        state = self._checkpoint.scans[scan][index]
        worker = self._new_worker()
        try:
            for page in self._scanners[scan].pages(state.segment, self._checkpoint.total_segments, state.last_key):
                if self._stop.is_set():
                    return
                counts = worker.handle(scan, page)
                self._checkpoint.advance(scan, index, page.last_key, counts,
                                         self._notes() if self._notes is not None else None)
                self._on_items(scan, len(page.items))
        except BaseException:
            self._stop.set()  # resume every segment from the checkpoint, not a few of them past a failure
            raise
        finally:
            with self._lock:
                self._calls += worker.calls
