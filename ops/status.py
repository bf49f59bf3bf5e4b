"""`python -m ops status --stage S`: item counts, queue depths, the consumers' metrics over the last hour, and
(with --peek) dead letters by consumer and reason.

Item counts come from Scan with Select=COUNT: exact, at the cost of reading each table once.
`--approximate` uses DescribeTable's ItemCount instead — free, but AWS refreshes it only about every
six hours, so it can lag far behind a table that is being written.

The consumers' table (records in, applied, dead-lettered, retries, AWS calls, largest stream lag) comes from
the EMF metrics the functions write, read with one CloudWatch GetMetricData call.

Dead letters are only counted by consumer and reason with `--peek`: that receives every message of the
dead-letter queues (hidden for --visibility seconds) and makes it visible again at once. Peeking raises
each message's receive count and briefly hides it from a redrive running at the same time, so it is opt-in.
A letter too large for its queue is read from DEAD_LETTER_BUCKET (the "in S3" column counts them; one
whose object cannot be read is grouped under that problem).

A stage none of whose tables and queues can be read (not provisioned in this account, region or emulator) is
one line on stderr and exit 1, not tables full of errors.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError
from rich.table import Table

from chalicelib import clients
from chalicelib.clock import iso_utc, utc_now
from chalicelib.config import Settings
from chalicelib.dead_letters import LetterStore
from ops.dead_letter_inbox import RAW_INGEST_REASON, DeadLetterInbox, InboxMessage, queue_depth
from ops.stage_options import VISIBILITY_SECONDS, WAIT_SECONDS, add_config_option, console, settings_of
from ops.table_scan import TableScanner
from tooling.consumer_metrics import consumers_table, read_windows

HELP = "show item counts, queue depths, the consumers' last hour and (--peek) dead letters by consumer and reason"
NOT_FOUND_CODES = ("ResourceNotFoundException", "AWS.SimpleQueueService.NonExistentQueue")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_option(parser)
    parser.add_argument("--approximate", action="store_true",
                        help="DescribeTable ItemCount (free, refreshed ~6 h) instead of an exact Scan COUNT")
    parser.add_argument("--peek", action="store_true",
                        help="receive the dead letters (then release them) to count them by consumer and reason")
    parser.add_argument("--visibility", type=VISIBILITY_SECONDS, default=30,
                        help="seconds a peeked message stays hidden if the release fails (default 30)")
    parser.add_argument("--wait-seconds", type=WAIT_SECONDS, default=1, help="receive long-poll seconds (default 1)")


@dataclass
class DeadLetterSummary:
    """Dead letters of one queue grouped by (consumer, reason), with the oldest failure of each group."""

    queue: str
    counts: Counter[tuple[str, str]] = field(default_factory=Counter)
    in_bucket: Counter[tuple[str, str]] = field(default_factory=Counter)  # whole letter kept in S3
    oldest: dict[tuple[str, str], str] = field(default_factory=dict)


def summarize(queue: str, messages: Sequence[InboxMessage]) -> DeadLetterSummary:
    """Group peeked messages by consumer and reason (pure)."""
    summary = DeadLetterSummary(queue)
    for message in messages:
        group = (message.consumer, message.reason or "-")
        summary.counts[group] += 1
        if message.record_location is not None:
            summary.in_bucket[group] += 1
        if message.letter is not None and message.reason != RAW_INGEST_REASON:  # raw messages carry no failure time
            failed_at = iso_utc(message.letter.failed_at)
            if group not in summary.oldest or failed_at < summary.oldest[group]:
                summary.oldest[group] = failed_at
    return summary


def peek(inbox: DeadLetterInbox, visibility: int, wait_seconds: int) -> DeadLetterSummary:
    """Receive every dead letter, count it, and make it visible again."""
    messages = list(inbox.receive(visibility, wait_seconds=wait_seconds))
    try:
        return summarize(inbox.label, messages)
    finally:
        inbox.release(messages)


def table_counts(settings: Settings, dynamodb: Any, approximate: bool) -> list[tuple[str, str, str]]:
    """(role, table, item count or the error that prevented counting) for each table of the stage."""
    tables = [("users (source)", settings.users_table),
              ("users by location (target)", settings.users_by_location_table),
              ("device metadata", settings.device_metadata_table),
              ("orders", settings.orders_table)]
    rows = []
    for role, name in tables:
        scanner = TableScanner(dynamodb, name)
        try:
            count = f"{scanner.approximate_count() if approximate else scanner.count():,}"
        except ClientError as error:
            count = _error_cell(error)
        rows.append((role, name, count))
    return rows


def queue_rows(settings: Settings, sqs: Any) -> list[tuple[str, str, str, str]]:
    """(queue, visible, in flight, delayed) for the ingest queue and both dead-letter queues."""
    rows = []
    for label, name_or_url in (("ingest", settings.ingest_queue), ("ingest DLQ", settings.ingest_dlq_url),
                               ("stream DLQ", settings.stream_dlq_url)):
        name = name_or_url.rsplit("/", 1)[-1]
        try:
            url = name_or_url if "/" in name_or_url else sqs.get_queue_url(QueueName=name)["QueueUrl"]
            depth = queue_depth(sqs, url)
        except ClientError as error:
            rows.append((f"{label}: {name}", _error_cell(error), "-", "-"))
            continue
        rows.append((f"{label}: {name}", f"{depth['visible']:,}", f"{depth['in_flight']:,}", f"{depth['delayed']:,}"))
    return rows


def unreadable_stage(stage: str, tables: Sequence[Sequence[str]], queues: Sequence[Sequence[str]],
                     where: str) -> str | None:
    """The one line for a stage none of whose resources could be read (None when any could); pure."""
    codes = [code for row in [*tables, *queues] for cell in row if (code := _error_code(cell))]
    if len(codes) < len(tables) + len(queues):
        return None
    if all(code in NOT_FOUND_CODES for code in codes):
        return (f"stage {stage} is not provisioned {where}: none of its {len(tables)} tables and {len(queues)} queues "
                f"exist (create them with `python -m ops provision --stage {stage}`)")
    return (f"none of stage {stage}'s {len(tables)} tables and {len(queues)} queues could be read {where}: "
            f"{', '.join(sorted(set(codes)))}")


def _error_cell(error: ClientError) -> str:
    return f"[red]{error.response.get('Error', {}).get('Code', 'error')}[/red]"


def _error_code(cell: str) -> str | None:
    return cell.removeprefix("[red]").removesuffix("[/red]") if cell.startswith("[red]") else None


def run(args: argparse.Namespace) -> int:
    out = console()
    settings = settings_of(args)
    dynamodb, sqs = clients.client("dynamodb"), clients.client("sqs")
    rows = table_counts(settings, dynamodb, args.approximate)
    depths = queue_rows(settings, sqs)
    endpoint = os.environ.get("AWS_ENDPOINT_URL")
    problem = unreadable_stage(args.stage, rows, depths,
                               f"at {endpoint}" if endpoint else f"in region {dynamodb.meta.region_name}")
    if problem:
        print(f"python -m ops status: error: {problem}", file=sys.stderr)
        return 1

    items = Table(title=f"tables ({'DescribeTable ItemCount, approximate' if args.approximate else 'Scan COUNT'})")
    for column, justify in (("role", "left"), ("table", "left"), ("items", "right")):
        items.add_column(column, justify=justify)  # type: ignore[arg-type]
    for row in rows:
        items.add_row(*row)
    out.print(items)

    queues = Table(title="queues (approximate)")
    for column in ("queue", "visible", "in flight", "delayed"):
        queues.add_column(column, justify="left" if column == "queue" else "right")
    for queue_row in depths:
        queues.add_row(*queue_row)
    out.print(queues)
    missing = sum(1 for row in [*rows, *depths] if any("[red]" in cell for cell in row))
    try:
        windows, _ = read_windows(clients.client("cloudwatch"), settings.metrics_namespace, utc_now())
        out.print(consumers_table(windows))
    except ClientError as error:
        missing += 1
        code = error.response.get("Error", {}).get("Code", "error")
        out.print(f"[red]consumer metrics of namespace {settings.metrics_namespace} could not be read: {code} "
                  f"(the operator needs cloudwatch:GetMetricData)[/red]")
    if missing:
        out.print(f"[red]{missing} resource(s) of stage {args.stage} could not be read: provision the stage?[/red]")
        return 1

    if not args.peek:
        out.print("dead letters by consumer and reason: run with --peek")
        return 0
    letters = Table(title="dead letters (peeked)")
    for column in ("queue", "consumer", "reason", "count", "in S3", "oldest failure"):
        letters.add_column(column, justify="right" if column in ("count", "in S3") else "left")
    total = 0
    store = LetterStore(clients.client("s3"), settings.dead_letter_bucket)
    for inbox in (DeadLetterInbox(sqs, settings.stream_dlq_url, label="stream DLQ", store=store),
                  DeadLetterInbox(sqs, settings.ingest_dlq_url, raw_is_ingest=True, label="ingest DLQ", store=store)):
        summary = peek(inbox, args.visibility, args.wait_seconds)
        for group, count in sorted(summary.counts.items()):
            total += count
            letters.add_row(summary.queue, *group, f"{count:,}", f"{summary.in_bucket[group]:,}",
                            summary.oldest.get(group, "-"))
    if total:
        out.print(letters)
    else:
        out.print("no dead letters")
    return 0
