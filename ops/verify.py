"""`python -m ops verify --stage S [--fix]`: compare USERS_BY_LOCATION_TABLE with the projection of the users table.

Both tables are read page by page, never whole, so memory stays a page per thread at any table size:

- the users table by a parallel segmented Scan; each page's projected keys are read from the target with
  BatchGetItem (≤ 100 keys a call): a key with no item is **missing**, an item that differs from the
  projection (values and DynamoDB types compared exactly) is **stale**;
- the target table by a parallel segmented Scan; the users its keys name are read with BatchGetItem: an
  item no user projects to is **orphaned**.

Every read is strongly consistent. The run splits across processes (`--segment I --total-segments N`),
shows progress and resumes from a checkpoint, as backfill does (ops/resumable_scan.py). Exit 1 on drift.

`--fix` repairs each page as it is checked, through the replay path: a stale or orphaned item is replaced
or deleted only if it is still exactly what verify saw; a missing item is created only where none exists,
and deleted again if its user moved or left meanwhile. A repair never overwrites a change the stream made
meanwhile (such items are counted as changed meanwhile; run verify again).
"""

from __future__ import annotations

import argparse
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from chalicelib import clients
from chalicelib.config import Settings
from chalicelib.replication.conditional_writer import ConditionalTargetWriter, Outcome, WriteResult
from chalicelib.replication.planning import GuardedWrite, plan_repair
from chalicelib.replication.projection import TargetKey
from ops.drift import Drift, check_targets, check_users, expected_keys, stored_key, user_email
from ops.progress import counter, progress_bar
from ops.resumable_scan import CheckpointMismatch, RunReport, ScanShare, SegmentedRun, open_run
from ops.stage_options import (
    add_config_option,
    add_scan_options,
    checkpoint_path,
    console,
    int_between,
    scan_share_of,
    settings_of,
)
from ops.table_scan import Page, TableScanner

HELP = "report drift between source and target (missing, stale, orphaned); exit 1 on drift; --fix repairs it"
SOURCE, TARGET = "source", "target"
KINDS = ("missing", "stale", "orphaned")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_option(parser)
    parser.add_argument("--fix", action="store_true", help="repair missing, stale and orphaned target items")
    parser.add_argument("--examples", type=int_between(0), default=5,
                        help="examples shown per kind of drift, first by key (default 5)")
    add_scan_options(parser, "verify[-fix]")


class Examples:
    """The first `limit` drifted keys of each kind, in key order whatever order the threads find them in."""

    def __init__(self, limit: int, saved: Mapping[str, Any] | None = None):
        self._limit = limit
        self._lock = threading.Lock()
        self._found: dict[str, dict[tuple[str, str], str]] = {kind: {} for kind in (*KINDS, "failed")}
        for kind, rows in (saved or {}).items():
            for state, city_email, text in rows if kind in self._found else ():
                self.add(kind, TargetKey(state, city_email), text)

    def add(self, kind: str, key: TargetKey, text: str) -> None:
        with self._lock:
            found = self._found[kind]
            found[(key.state, key.city_email)] = text
            if len(found) > self._limit:
                del found[max(found)]

    def shown(self, kind: str) -> list[str]:
        with self._lock:
            return [text for _, text in sorted(self._found[kind].items())]

    def as_notes(self) -> dict[str, list[list[str]]]:
        with self._lock:
            return {kind: [[state, city_email, text] for (state, city_email), text in sorted(found.items())]
                    for kind, found in self._found.items()}


def key_text(key: TargetKey) -> str:
    return f"{key.state} / {key.city_email}"


def repairs_for(drift: Drift) -> tuple[list[GuardedWrite], list[GuardedWrite]]:
    """The writes that make the target equal the projection again: (items to create, items to replace/delete)."""
    create = [plan_repair(entry.key, entry.user, None) for entry in drift.missing]
    change = [plan_repair(entry.key, entry.user, entry.actual) for entry in drift.stale]
    change += [plan_repair(entry.key, None, entry.actual) for entry in drift.orphaned]
    return [w for w in create if w is not None], [w for w in change if w is not None]


def repair(writer: ConditionalTargetWriter, drift: Drift) -> list[WriteResult]:
    """Apply the repairs: missing items through the create-and-confirm path, the rest as conditional writes."""
    create, change = repairs_for(drift)
    return writer.create_missing(create) + writer.apply(change)


class PageCheck:
    """Checks the pages of one segment thread (and repairs them with --fix); `calls` counts its requests."""

    def __init__(self, writer: ConditionalTargetWriter, fix: bool, examples: Examples):
        self._writer = writer
        self._fix = fix
        self._examples = examples

    @property
    def calls(self) -> int:
        return self._writer.calls

    def handle(self, scan: str, page: Page) -> dict[str, int]:
        if scan == SOURCE:
            drift = check_users(page.items, self._writer.read_targets(expected_keys(page.items)))
        else:
            emails = [email for email in (user_email(stored_key(item)) for item in page.items) if email]
            drift = check_targets(page.items, self._writer.read_sources(emails))
        for entry in drift.missing:
            self._examples.add("missing", entry.key, key_text(entry.key))
        for stale in drift.stale:
            self._examples.add("stale", stale.key, f"{key_text(stale.key)}  differs in: {', '.join(stale.differences)}")
        for orphan in drift.orphaned:
            self._examples.add("orphaned", orphan.key, key_text(orphan.key))
        counts = {"source_items": drift.source_items, "expected_items": drift.expected_items,
                  "target_items": drift.target_items, "missing": len(drift.missing), "stale": len(drift.stale),
                  "orphaned": len(drift.orphaned)}
        if self._fix and drift.total:
            results = repair(self._writer, drift)
            for result in results:
                if result.outcome is Outcome.FAILED:
                    self._examples.add("failed", result.write.key, f"{key_text(result.write.key)}: {result.error}")
            counts["repaired"] = sum(1 for r in results if r.outcome is Outcome.APPLIED)
            counts["changed_meanwhile"] = sum(1 for r in results
                                              if r.outcome in (Outcome.SUPERSEDED, Outcome.SOURCE_CHANGED))
            counts["repair_failed"] = sum(1 for r in results if r.outcome is Outcome.FAILED)
        return counts


@dataclass
class VerifyReport(RunReport):
    """A verify run's end: its counts, and the first examples of each kind of drift."""

    examples: Examples = field(default_factory=lambda: Examples(0))

    @property
    def drift(self) -> int:
        return sum(self.total(kind) for kind in KINDS)


def run_verify(settings: Settings, dynamodb: Any, path: Path, share: ScanShare, page_size: int = 500,
               fix: bool = False, restart: bool = False, examples: int = 5, show_progress: bool = False,
               out: Console | None = None) -> VerifyReport:
    """Run (or resume) this process's share of a verify; the checkpoint is removed once it completes."""
    identity = {"verb": "verify", "source": settings.users_table, "target": settings.users_by_location_table,
                "share": f"{share.share} of {share.shares}", "fix": fix}
    scanners = {SOURCE: TableScanner(dynamodb, settings.users_table, page_size, consistent=True),
                TARGET: TableScanner(dynamodb, settings.users_by_location_table, page_size, consistent=True)}
    checkpoint, estimates = open_run(path, identity, scanners, share, restart)
    found = Examples(examples, checkpoint.notes.get("examples"))

    def new_check() -> PageCheck:
        writer = ConditionalTargetWriter(dynamodb, settings.users_table, settings.users_by_location_table)
        return PageCheck(writer, fix, found)

    with progress_bar(out or console(), enabled=show_progress) as progress:
        tasks = {}
        for scan, scanner in scanners.items():
            done = checkpoint.total(f"{scan}_items")
            estimate = estimates[scan]
            tasks[scan] = progress.add_task(f"{scan} {scanner.table}", total=max(estimate, done) or None,
                                            completed=done)

        counters = {scan: counter(progress, task) for scan, task in tasks.items()}
        run = SegmentedRun(checkpoint, scanners, new_check, lambda scan, count: counters[scan](scan, count),
                           notes=lambda: {"examples": found.as_notes()}).run()
        if checkpoint.complete:
            for scan, task in tasks.items():
                progress.update(task, total=checkpoint.total(f"{scan}_items", scan))
    return VerifyReport(checkpoint, run.errors, run.interrupted, run.calls, found)


def drift_table(report: VerifyReport) -> Table:
    """Counts of each kind of drift with the first examples by key."""
    table = Table(title="drift")
    table.add_column("kind")
    table.add_column("count", justify="right")
    table.add_column("examples (state / city#email)")
    for kind in KINDS:
        count, shown = report.total(kind), report.examples.shown(kind)
        more = count - len(shown)
        text = "\n".join(shown) + (f"\n… and {more:,} more" if more > 0 and shown else "")
        table.add_row(kind, f"{count:,}", text or "-")
    return table


def run(args: argparse.Namespace) -> int:
    out = console()
    settings = settings_of(args)
    share = scan_share_of(args)
    path = checkpoint_path(args, "verify-fix" if args.fix else "verify")  # a --fix run resumes only a --fix run
    try:
        report = run_verify(settings, clients.client("dynamodb"), path, share, args.page_size, args.fix,
                            args.restart, args.examples, show_progress=not args.no_progress, out=out)
    except CheckpointMismatch as error:
        out.print(f"[red]{error}[/red]")
        return 2

    counts = Table(title=f"verify {settings.users_table} → {settings.users_by_location_table}")
    for column in ("source items", "expected target items", "target items"):
        counts.add_column(column, justify="right")
    counts.add_row(*(f"{report.total(name):,}" for name in ("source_items", "expected_items", "target_items")))
    out.print(counts)
    if share.shares > 1:
        out.print(f"this process: {share.describe()} — the counts cover this share only")
    out.print(drift_table(report))
    if args.fix and report.drift:
        fixed = Table(title="repairs")
        for column in ("applied", "changed meanwhile (left alone)", "failed"):
            fixed.add_column(column, justify="right")
        fixed.add_row(*(f"{report.total(name):,}" for name in ("repaired", "changed_meanwhile", "repair_failed")))
        out.print(fixed)
        for problem in report.examples.shown("failed"):
            out.print(f"[red]{problem}[/red]")
    if report.checkpoint.discarded:
        out.print(f"[yellow]{path} was of tables since created again: started over[/yellow]")
    if report.checkpoint.resumed:
        out.print(f"resumed from {path} (a run started {report.checkpoint.started_at})")
    out.print(f"DynamoDB requests this run: {report.calls:,}")
    if not report.complete:
        for problem in report.errors:
            out.print(f"[red]{problem}[/red]")
        state = "interrupted" if report.interrupted else "stopped"
        out.print(f"[yellow]verify {state}: progress kept in {path}; run the same command to resume[/yellow]")
        return 130 if report.interrupted else 1
    if report.drift == 0:
        out.print("[green]no drift[/green]")
        return 0
    if not args.fix:
        out.print(f"[red]drift: {report.drift:,} target item(s) differ[/red] (run with --fix to repair)")
        return 1
    if report.total("repaired") == report.drift:
        out.print("[green]drift repaired[/green]")
        return 0
    out.print("[yellow]some drift was not repaired; run verify again[/yellow]")
    return 1
