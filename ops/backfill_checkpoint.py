"""Backfill progress on disk, per scan segment, so an interrupted run resumes where it stopped.

A segment's `last_key` is advanced only after every item of the page before it was written, so a
resumed run re-reads at most the page that was in flight (whose writes are create-only: no double
copies). The file is written atomically (temp file + rename) under a lock shared by the segment threads,
and removed when the run completes.
"""

from __future__ import annotations

import json
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


class CheckpointMismatch(ValueError):
    """The checkpoint on disk belongs to other tables."""


@dataclass
class SegmentProgress:
    """Where one segment stands, and what it has done so far."""

    last_key: dict[str, Any] | None = None
    done: bool = False
    scanned: int = 0
    created: int = 0
    present: int = 0
    no_target: int = 0
    changed: int = 0


@dataclass
class BackfillCheckpoint:
    """The checkpoint of one backfill of `source_table` into `target_table`."""

    path: Path
    source_table: str
    target_table: str
    total_segments: int
    segments: list[SegmentProgress] = field(default_factory=list)
    resumed: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @classmethod
    def open(cls, path: Path, source_table: str, target_table: str, total_segments: int,
             restart: bool = False) -> BackfillCheckpoint:
        """The checkpoint at `path` if one is there (its segment count wins), else a fresh one."""
        if path.exists() and not restart:
            data = json.loads(path.read_text())
            if (data.get("source_table"), data.get("target_table")) != (source_table, target_table):
                raise CheckpointMismatch(
                    f"{path} is a backfill of {data.get('source_table')} → {data.get('target_table')}, "
                    f"not {source_table} → {target_table}; use --restart to discard it")
            segments = [SegmentProgress(**segment) for segment in data["segments"]]
            return cls(path, source_table, target_table, len(segments), segments, resumed=True)
        return cls(path, source_table, target_table, total_segments,
                   [SegmentProgress() for _ in range(total_segments)])

    def advance(self, segment: int, last_key: dict[str, Any] | None, **counts: int) -> None:
        """Record a finished page of `segment` (None = the segment is finished) and save."""
        with self._lock:
            state = self.segments[segment]
            state.last_key = last_key
            state.done = last_key is None
            for name, value in counts.items():
                setattr(state, name, getattr(state, name) + value)
            self._save()

    def total(self, name: str) -> int:
        """The sum of counter `name` over the segments."""
        return sum(int(getattr(segment, name)) for segment in self.segments)

    @property
    def complete(self) -> bool:
        return all(segment.done for segment in self.segments)

    def remove(self) -> None:
        """Forget the run (after it completed)."""
        with self._lock:
            self.path.unlink(missing_ok=True)

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        body = {
            "source_table": self.source_table,
            "target_table": self.target_table,
            "total_segments": self.total_segments,
            "segments": [asdict(segment) for segment in self.segments],
        }
        tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        tmp.write_text(json.dumps(body, indent=1))
        tmp.replace(self.path)
