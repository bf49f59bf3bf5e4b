"""`python -m ops backfill --stage S`: copy every existing user into USERS_BY_LOCATION_TABLE.

A stream starts at LATEST, so users written before the consumer existed are never replicated. Backfill
scans the users table in parallel segments (split across processes with `--segment I --total-segments N`,
resumable: ops/resumable_scan.py) and writes each user's projection through the replay path
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
skips items already present, so a re-run or a resumed run costs reads, not writes. `--max-wcu N` caps
the writes at N write capacity units per second over all segment threads (ops/write_capacity.py).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from rich.table import Table

from chalicelib import clients
from chalicelib.config import Settings
from chalicelib.replication.conditional_writer import ConditionalTargetWriter, Outcome
from chalicelib.replication.planning import GuardedWrite, plan_backfill
from ops.progress import counter, progress_bar
from ops.resumable_scan import CheckpointMismatch, RunReport, ScanShare, SegmentedRun, open_run
from ops.stage_options import add_config_option, add_scan_options, checkpoint_path, console, scan_share_of, settings_of
from ops.table_scan import Page, TableScanner
from ops.write_capacity import TokenBucket, WriteLimiter, write_units

HELP = "copy every existing source item into the target (parallel, resumable, safe while the stream runs)"
SOURCE_REREADS = 2
SOURCE = "source"
COUNTS = ("scanned", "created", "present", "no_target", "changed")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_option(parser)
    add_scan_options(parser, "backfill")
    parser.add_argument("--max-wcu", type=_positive, default=None, metavar="N",
                        help="write at most N write capacity units per second, over all segment threads "
                             "(1 per started KB of each item; a conditional write that finds the item there "
                             "counts too); default: no limit")


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


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


class PageCopy:
    """Copies the pages of one segment thread; `calls` counts its requests."""

    def __init__(self, writer: ConditionalTargetWriter):
        self._writer = writer

    @property
    def calls(self) -> int:
        return self._writer.calls

    def handle(self, scan: str, page: Page) -> dict[str, int]:
        return copy_page(self._writer, page.items).as_dict()


def metered(limiter: WriteLimiter) -> Any:
    """A `before_write` hook that spends each write's capacity units from `limiter` before it is sent."""

    def before_write(write: GuardedWrite) -> None:
        # A delete costs what the deleted item weighs: the item the condition says is there.
        limiter.take(write_units(write.item if write.item is not None else write.condition.seen))

    return before_write


def run_backfill(settings: Settings, dynamodb: Any, checkpoint_path: Path, share: ScanShare | None = None,
                 page_size: int = 500, restart: bool = False, show_progress: bool = False,
                 limiter: WriteLimiter | None = None) -> RunReport:
    """Run (or resume) this process's share of a backfill; the checkpoint is removed once it completes."""
    share = share or ScanShare()
    identity = {"verb": "backfill", "source": settings.users_table, "target": settings.users_by_location_table,
                "share": f"{share.share} of {share.shares}"}
    scanner = TableScanner(dynamodb, settings.users_table, page_size)
    checkpoint, estimates = open_run(checkpoint_path, identity, {SOURCE: scanner}, share, restart)

    def new_copy() -> PageCopy:
        writer = ConditionalTargetWriter(dynamodb, settings.users_table, settings.users_by_location_table)
        if limiter is not None:
            writer.before_write = metered(limiter)
        return PageCopy(writer)

    with progress_bar(console(), enabled=show_progress) as progress:
        estimate = estimates[SOURCE]
        done = checkpoint.total("scanned")
        task = progress.add_task("backfill", total=max(estimate, done) or None, completed=done)
        report = SegmentedRun(checkpoint, {SOURCE: scanner}, new_copy, counter(progress, task)).run()
        if checkpoint.complete:
            progress.update(task, total=checkpoint.total("scanned"))
    return report


def run(args: argparse.Namespace) -> int:
    out = console()
    settings = settings_of(args)
    share = scan_share_of(args)
    path = checkpoint_path(args, "backfill")
    limiter = TokenBucket(args.max_wcu) if args.max_wcu else None
    try:
        report = run_backfill(settings, clients.client("dynamodb"), path, share, args.page_size, args.restart,
                              show_progress=not args.no_progress, limiter=limiter)
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
    table.add_row(*(f"{checkpoint.total(name):,}" for name in COUNTS))
    out.print(table)
    if share.shares > 1:
        out.print(f"this process: {share.describe()} — the counts cover this share only")
    if checkpoint.discarded:
        out.print(f"[yellow]{path} was of tables since created again: started over[/yellow]")
    if checkpoint.resumed:
        out.print(f"resumed from {path}")
    if limiter is not None:
        out.print(f"writes limited to {limiter.rate:g} WCU/s")
    out.print(f"DynamoDB requests this run: {report.calls:,}")
    if report.complete:
        out.print("[green]backfill complete[/green]")
        return 0
    for problem in report.errors:
        out.print(f"[red]{problem}[/red]")
    state = "interrupted" if report.interrupted else "stopped"
    out.print(f"[yellow]backfill {state}: progress kept in {path}; run the same command to resume[/yellow]")
    return 130 if report.interrupted else 1
