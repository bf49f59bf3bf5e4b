"""`python -m ops backfill --stage S`: copy every existing user into USERS_BY_LOCATION_TABLE.

A stream starts at LATEST, so users written before the consumer existed are never replicated. Backfill
scans the users table in parallel segments and writes each user's projection through the replay path
(`chalicelib.replication.replay`), which makes it safe while the stream is live:

- it only CREATES missing target items (conditional PutItem, `attribute_not_exists`), so it never
  overwrites what the stream wrote — the stream's item is as new or newer than what the scan read;
- after writing a page it re-reads those users (BatchGetItem); an item whose user moved or was deleted
  since the scan is deleted again, only if it is still exactly what backfill wrote — so nothing is
  resurrected, and the user's current state is copied on a second round if it is still missing.

Trade-off: BatchWriteItem (25 items per call) cannot carry a condition, so while the stream runs it
could overwrite a newer item or resurrect a deleted one. A TransactWriteItems per item with a check on
the source would be atomic but costs twice the write capacity. Conditional PutItem costs 1 WCU per
item and one request per item (parallel over the segment threads); a BatchGetItem before each page
skips items already present, so a re-run or a resumed run costs reads, not writes.
"""

from __future__ import annotations

import argparse
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from rich.table import Table

from chalicelib import clients
from chalicelib.config import Settings
from chalicelib.replication.replay import ConditionalTargetWriter, GuardedWrite, Outcome, plan_backfill
from ops.backfill_checkpoint import BackfillCheckpoint, CheckpointMismatch
from ops.progress import progress_bar
from ops.stage_options import STATE_DIR, add_config_option, console, settings_of
from ops.table_scan import TableScanner

HELP = "copy every existing source item into the target (parallel, resumable, safe while the stream runs)"
SOURCE_REREADS = 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_option(parser)
    parser.add_argument("--segments", type=int, default=4, help="parallel scan segments/threads (default 4)")
    parser.add_argument("--page-size", type=int, default=500, help="items per Scan page (default 500)")
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="checkpoint file (default .ops-state/<stage>-backfill.json)")
    parser.add_argument("--restart", action="store_true", help="discard an existing checkpoint and start over")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (logs, CI)")


class BackfillFailed(RuntimeError):
    """A page could not be written; its segment stops without advancing its checkpoint."""


@dataclass
class PageCounts:
    """What copying one page did."""

    scanned: int = 0
    created: int = 0
    present: int = 0     # a target item was already there (the stream's, or an earlier run's)
    no_target: int = 0   # the user has no state or city: nothing to copy
    changed: int = 0     # changed or deleted since the scan, and its target is not ours to write

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass
class BackfillReport:
    """The outcome of one run (totals include what earlier runs of a resumed backfill did)."""

    checkpoint: BackfillCheckpoint
    errors: list[str] = field(default_factory=list)
    interrupted: bool = False
    calls: int = 0

    @property
    def complete(self) -> bool:
        return self.checkpoint.complete and not self.errors


class Backfill:
    """Copies the users table into the target, segment by segment, checkpointing every finished page."""

    def __init__(self, dynamodb: Any, settings: Settings, checkpoint: BackfillCheckpoint,
                 page_size: int = 500, on_items: Callable[[int], None] | None = None):
        self._dynamodb = dynamodb
        self._settings = settings
        self._checkpoint = checkpoint
        self._page_size = page_size
        self._on_items = on_items or (lambda _n: None)
        self._stop = threading.Event()
        self._calls_lock = threading.Lock()
        self.calls = 0

    def run(self) -> BackfillReport:
        """Copy every unfinished segment in parallel; stop all segments when one fails or on Ctrl-C."""
        report = BackfillReport(self._checkpoint)
        todo = [i for i, segment in enumerate(self._checkpoint.segments) if not segment.done]
        if not todo:
            return report
        pool = ThreadPoolExecutor(max_workers=len(todo), thread_name_prefix="backfill")
        futures = [pool.submit(self._copy_segment, segment) for segment in todo]
        try:
            for future in futures:
                error = future.exception()
                if error is not None:
                    report.errors.append(f"{type(error).__name__}: {error}")
        except KeyboardInterrupt:
            report.interrupted = True
            self._stop.set()  # segments finish the page in flight, checkpoint it, and stop
        finally:
            pool.shutdown(wait=True)
        report.calls = self.calls
        return report

    def _copy_segment(self, segment: int) -> None:
        scanner = TableScanner(self._dynamodb, self._settings.users_table, self._page_size)
        writer = ConditionalTargetWriter(self._dynamodb, self._settings.users_table,
                                         self._settings.users_by_location_table)
        state = self._checkpoint.segments[segment]
        try:
            for page in scanner.pages(segment, self._checkpoint.total_segments, state.last_key):
                if self._stop.is_set():
                    return
                counts = self.copy_page(writer, page.items)
                self._checkpoint.advance(segment, page.last_key, **counts.as_dict())
                self._on_items(counts.scanned)
        except BaseException:
            self._stop.set()  # one failing segment stops the others: resume all from the checkpoint
            raise
        finally:
            with self._calls_lock:
                self.calls += scanner.calls + writer.calls

    @staticmethod
    def copy_page(writer: ConditionalTargetWriter, users: list[dict[str, Any]]) -> PageCounts:
        """Create the missing target items of one page of users (raises BackfillFailed if writes fail)."""
        counts = PageCounts(scanned=len(users))
        writes: list[GuardedWrite] = []
        for user in users:
            write = plan_backfill(user)
            if write is None:
                counts.no_target += 1
            else:
                writes.append(write)
        for round_number in range(SOURCE_REREADS + 1):
            changed: list[GuardedWrite] = []
            for result in writer.create_missing(writes):
                if result.outcome is Outcome.APPLIED:
                    counts.created += 1
                elif result.outcome is Outcome.SUPERSEDED:
                    counts.present += 1
                elif result.outcome is Outcome.SOURCE_CHANGED:
                    changed.append(result.write)
                else:
                    raise BackfillFailed(f"writing {result.write.key.as_key()} failed: {result.error}")
            if not changed:
                break
            if round_number == SOURCE_REREADS:
                counts.changed += len(changed)
                break
            writes = []
            for write in changed:  # copy what the user is now (the stream replicates the change too)
                assert write.source is not None
                current = writer.read_source(write.source.email)
                replanned = plan_backfill(current) if current is not None else None
                if replanned is None:
                    counts.changed += 1
                else:
                    writes.append(replanned)
        return counts


def run_backfill(settings: Settings, dynamodb: Any, checkpoint_path: Path, segments: int = 4,
                 page_size: int = 500, restart: bool = False, show_progress: bool = False) -> BackfillReport:
    """Run (or resume) a backfill with a progress bar; the checkpoint is removed once it completes."""
    checkpoint = BackfillCheckpoint.open(checkpoint_path, settings.users_table,
                                         settings.users_by_location_table, segments, restart)
    scanner = TableScanner(dynamodb, settings.users_table)
    out = console()
    with progress_bar(out, enabled=show_progress) as progress:
        estimate = scanner.approximate_count()
        done = checkpoint.total("scanned")
        task = progress.add_task("backfill", total=max(estimate, done) or None, completed=done)

        def on_items(count: int) -> None:
            progress.advance(task, count)
            current = progress.tasks[task]
            if current.total is not None and current.completed > current.total:
                progress.update(task, total=current.completed)  # ItemCount is approximate on AWS

        report = Backfill(dynamodb, settings, checkpoint, page_size, on_items).run()
        if report.complete:
            progress.update(task, total=checkpoint.total("scanned"))
    report.calls += scanner.calls
    if report.complete:
        checkpoint.remove()
    return report


def run(args: argparse.Namespace) -> int:
    out = console()
    if args.segments < 1 or args.page_size < 1:
        out.print("[red]--segments and --page-size must be at least 1[/red]")
        return 2
    settings = settings_of(args)
    path = args.checkpoint or STATE_DIR / f"{args.stage}-backfill.json"
    try:
        report = run_backfill(settings, clients.client("dynamodb"), path, args.segments, args.page_size,
                              args.restart, show_progress=not args.no_progress)
    except CheckpointMismatch as error:
        out.print(f"[red]{error}[/red]")
        return 2
    except (ClientError, BotoCoreError) as error:
        out.print(f"[red]backfill could not start: {error}[/red]")
        return 1
    checkpoint = report.checkpoint
    table = Table(title=f"backfill {settings.users_table} → {settings.users_by_location_table}")
    for column in ("scanned", "created", "already present", "no target (no state/city)", "changed during run"):
        table.add_column(column, justify="right")
    table.add_row(*(f"{checkpoint.total(name):,}" for name in ("scanned", "created", "present", "no_target",
                                                                 "changed")))
    out.print(table)
    if checkpoint.resumed:
        out.print(f"resumed from {path}")
    out.print(f"DynamoDB requests this run: {report.calls:,}")
    if report.complete:
        out.print("[green]backfill complete[/green]")
        return 0
    for problem in report.errors:
        out.print(f"[red]{problem}[/red]")
    state = "interrupted" if report.interrupted else "stopped"
    out.print(f"[yellow]backfill {state}: progress kept in {path}; run the same command to resume[/yellow]")
    return 130 if report.interrupted else 1
