"""`python -m ops verify --stage S [--fix]`: compare USERS_BY_LOCATION_TABLE with the projection of the users table.

Both tables are scanned (parallel segments, strongly consistent reads) and compared in memory by target
key: missing (a user's projection is absent), stale (the target item differs from the projection,
`source_sequence` ignored) and orphaned (no user projects to the target item). Exit status 1 on drift.

`--fix` repairs through the replay path: a stale or orphaned item is replaced or deleted only if it is
still exactly what verify saw; a missing item is created only where none exists, and deleted again if
its user moved or left meanwhile. So a repair never overwrites a change the stream made meanwhile
(such items are reported as changed; run verify again).
"""

from __future__ import annotations

import argparse
from typing import Any

from rich.console import Console
from rich.table import Table

from chalicelib import clients
from chalicelib.config import Settings
from chalicelib.replication.projection import TargetKey
from chalicelib.replication.replay import ConditionalTargetWriter, GuardedWrite, Outcome, WriteResult, plan_repair
from ops.drift import Drift, find_drift
from ops.progress import progress_bar
from ops.stage_options import add_config_option, console, settings_of
from ops.table_scan import Page, TableScanner

HELP = "report drift between source and target (missing, stale, orphaned); exit 1 on drift; --fix repairs it"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_option(parser)
    parser.add_argument("--fix", action="store_true", help="repair missing, stale and orphaned target items")
    parser.add_argument("--examples", type=int, default=5, help="examples shown per kind of drift (default 5)")
    parser.add_argument("--segments", type=int, default=4, help="parallel scan segments per table (default 4)")
    parser.add_argument("--no-progress", action="store_true", help="no progress display")


def scan_tables(settings: Settings, dynamodb: Any, segments: int, out: Console,
                show_progress: bool) -> tuple[list[dict[str, Any]], list[dict[str, Any]], int]:
    """Every source user and every target item (and the Scan requests it took)."""
    source = TableScanner(dynamodb, settings.users_table, consistent=True)
    target = TableScanner(dynamodb, settings.users_by_location_table, consistent=True)
    with progress_bar(out, enabled=show_progress) as progress:
        def scan(scanner: TableScanner, label: str) -> list[dict[str, Any]]:
            task = progress.add_task(f"scan {label}", total=scanner.approximate_count() or None)

            def on_page(page: Page) -> None:
                progress.advance(task, len(page.items))

            items = scanner.all_items(segments, on_page)
            progress.update(task, total=len(items), completed=len(items))
            return items

        users, items = scan(source, "source"), scan(target, "target")
    return users, items, source.calls + target.calls


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


def _key_text(key: TargetKey) -> str:
    return f"{key.state} / {key.city_email}"


def drift_table(drift: Drift, examples: int) -> Table:
    """Counts of each kind of drift with a few examples."""
    table = Table(title="drift")
    table.add_column("kind")
    table.add_column("count", justify="right")
    table.add_column("examples (state / city#email)")
    rows: list[tuple[str, int, list[str]]] = [
        ("missing", len(drift.missing), [_key_text(m.key) for m in drift.missing[:examples]]),
        ("stale", len(drift.stale),
         [f"{_key_text(s.key)}  differs in: {', '.join(s.differences)}" for s in drift.stale[:examples]]),
        ("orphaned", len(drift.orphaned), [_key_text(o.key) for o in drift.orphaned[:examples]]),
    ]
    for kind, count, shown in rows:
        more = count - len(shown)
        text = "\n".join(shown) + (f"\n… and {more:,} more" if more > 0 else "")
        table.add_row(kind, f"{count:,}", text or "-")
    return table


def run(args: argparse.Namespace) -> int:
    out = console()
    settings = settings_of(args)
    dynamodb = clients.client("dynamodb")
    users, items, calls = scan_tables(settings, dynamodb, max(1, args.segments), out, not args.no_progress)
    drift = find_drift(users, items)

    counts = Table(title=f"verify {settings.users_table} → {settings.users_by_location_table}")
    for column in ("source items", "expected target items", "target items"):
        counts.add_column(column, justify="right")
    counts.add_row(f"{drift.source_items:,}", f"{drift.expected_items:,}", f"{drift.target_items:,}")
    out.print(counts)
    out.print(drift_table(drift, max(0, args.examples)))
    if drift.total == 0:
        out.print(f"[green]no drift[/green] ({calls:,} Scan requests)")
        return 0
    if not args.fix:
        out.print(f"[red]drift: {drift.total:,} target item(s) differ[/red] (run with --fix to repair)")
        return 1

    writer = ConditionalTargetWriter(dynamodb, settings.users_table, settings.users_by_location_table)
    results = repair(writer, drift)
    outcomes = {outcome: sum(1 for r in results if r.outcome is outcome) for outcome in Outcome}
    fixed = Table(title="repairs")
    for column in ("applied", "changed meanwhile (left alone)", "failed"):
        fixed.add_column(column, justify="right")
    meanwhile = outcomes[Outcome.SUPERSEDED] + outcomes[Outcome.SOURCE_CHANGED]
    fixed.add_row(f"{outcomes[Outcome.APPLIED]:,}", f"{meanwhile:,}", f"{outcomes[Outcome.FAILED]:,}")
    out.print(fixed)
    for result in [r for r in results if r.outcome is Outcome.FAILED][:args.examples]:
        out.print(f"[red]{_key_text(result.write.key)}: {result.error}[/red]")
    out.print(f"DynamoDB requests: {calls + writer.calls:,}")
    if outcomes[Outcome.APPLIED] == len(results):
        out.print("[green]drift repaired[/green]")
        return 0
    out.print("[yellow]some drift was not repaired; run verify again[/yellow]")
    return 1
