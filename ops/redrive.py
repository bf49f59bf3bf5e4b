"""`python -m ops redrive --stage S [--dry-run]`: send dead letters back through the consumer that failed them.

STREAM_DLQ_URL holds letters of `replication`, `fanout` and `orders`, and Lambda's own failure records of
stream batches it gave up on (their records are re-read from the stream and replayed one by one);
INGEST_DLQ_URL holds `ingest` letters and raw messages the ingest queue's own redrive policy moved there
(replayed as ingest messages).

- replication → the replay path (`chalicelib.replication.replay`): the current source item is the truth,
  and a target item written by a newer stream record is never overwritten;
- fanout / orders / ingest → the consumer itself (`process`), whose Outcome is read, never delivered: a
  record that fails again stays in its queue (its new reason is reported) rather than being duplicated,
  and nothing is ever deleted from the ingest queue (delivering is what deletes).

A letter too large for its queue is read whole from DEAD_LETTER_BUCKET (the inbox follows the pointer).
A letter is deleted only once it was applied: its S3 object first, then the message. Letters left in the
queue are made visible again at the end of the run. `--dry-run` reads everything, says what would
happen, and changes nothing.
"""

from __future__ import annotations

import argparse
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from rich.table import Table

from chalicelib import clients, components
from chalicelib.config import Settings
from chalicelib.consumer_runtime import ConsumerRuntime
from chalicelib.dead_letters import CONSUMERS, DeadLetter, LetterStore
from chalicelib.replication.conditional_writer import ConditionalTargetWriter
from chalicelib.replication.planning import ReplayError, plan_replay
from chalicelib.replication.replay import ReplicationReplayer
from chalicelib.retry import GaveUp
from chalicelib.stream.record import MalformedRecord, StreamRecord
from ops.dead_letter_inbox import DeadLetterInbox, InboxMessage, body_preview
from ops.stage_options import (
    VISIBILITY_SECONDS,
    WAIT_SECONDS,
    add_config_option,
    console,
    int_between,
    settings_of,
)
from ops.stream_batch_failure import STREAM_RETENTION_HINT, StreamBatchFailure, StreamBatchReader

HELP = "replay dead letters through the consumer that failed them; each is deleted only once applied"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_option(parser)
    parser.add_argument("--queue", choices=("stream", "ingest", "all"), default="all",
                        help="which dead-letter queue (default all)")
    parser.add_argument("--consumer", choices=CONSUMERS, action="append",
                        help="only letters of this consumer (repeatable; default all)")
    parser.add_argument("--limit", type=int_between(1), default=None, help="at most this many letters per queue")
    parser.add_argument("--dry-run", action="store_true", help="show what would happen; apply and delete nothing")
    parser.add_argument("--visibility", type=VISIBILITY_SECONDS, default=300,
                        help="seconds a letter stays hidden from other readers while this run holds it (default 300)")
    parser.add_argument("--wait-seconds", type=WAIT_SECONDS, default=1, help="receive long-poll seconds (default 1)")


class Verdict(StrEnum):
    """What happened to one letter."""

    APPLIED = "applied"
    WOULD_APPLY = "would apply"
    FAILED_AGAIN = "failed again"
    INVALID = "invalid"          # failed validation again (ingest): it will never apply as it is
    UNREADABLE = "unreadable"    # not a dead letter we can replay
    FILTERED = "not selected"


@dataclass(frozen=True)
class Replayed:
    """The verdict on one letter and why."""

    verdict: Verdict
    detail: str = ""


Replayer = Callable[[DeadLetter], Replayed]


def _failed(error: BaseException) -> Replayed:
    return Replayed(Verdict.FAILED_AGAIN, f"{type(error).__name__}: {error}")


class ConsumerReplays:
    """Replays one letter through the consumer that failed it (or, dry, describes what would happen)."""

    def __init__(self, settings: Settings, dynamodb: Any, streams: Any = None):
        self._writer = ConditionalTargetWriter(dynamodb, settings.users_table, settings.users_by_location_table)
        self._replication = ReplicationReplayer(self._writer)
        self._streams = StreamBatchReader(streams)

    @property
    def calls(self) -> int:
        """DynamoDB and DynamoDB Streams requests of the replication replays and stream re-reads."""
        return self._writer.calls + self._streams.calls

    def replay_batch(self, failure: StreamBatchFailure, dry_run: bool) -> Replayed:
        """Re-read a batch Lambda gave up on from the stream and replay each record (or say what would happen)."""
        if failure.consumer is None:
            return Replayed(Verdict.UNREADABLE, f"failure record of an unknown function {failure.function_arn}")
        try:
            records = self._streams.records(failure)
        except (ClientError, BotoCoreError) as error:
            return Replayed(Verdict.FAILED_AGAIN, f"stream records not readable ({error}); {STREAM_RETENTION_HINT}")
        if not records:
            return Replayed(Verdict.FAILED_AGAIN, f"no records left in that range; {STREAM_RETENTION_HINT}")
        if dry_run:
            return Replayed(Verdict.WOULD_APPLY, f"re-read {len(records)} record(s) from shard {failure.shard_id} "
                                                 f"and replay them through {failure.consumer}")
        for index, record in enumerate(records):
            outcome = self.replay(DeadLetter(failure.consumer, failure.reason, "", 0, record))
            if outcome.verdict is not Verdict.APPLIED:  # the applied ones replay harmlessly next time
                return Replayed(Verdict.FAILED_AGAIN, f"{outcome.detail} ({index} of {len(records)} record(s) applied)")
        return Replayed(Verdict.APPLIED)

    def replay(self, letter: DeadLetter) -> Replayed:
        replayers: dict[str, Replayer] = {
            "replication": self._replicate,
            "fanout": self._fanout,
            "orders": self._orders,
            "ingest": self._ingest,
        }
        try:
            return replayers[letter.consumer](letter)
        except (ClientError, BotoCoreError, RuntimeError, ValueError, KeyError, TypeError) as error:
            return _failed(error)

    def describe(self, letter: DeadLetter) -> Replayed:
        """What replaying would do, without doing it."""
        if letter.consumer == "replication":
            try:
                record = StreamRecord(letter.record)
                email = record.keys.get("email")
                current = self._writer.read_source(email) if isinstance(email, str) else None
                writes = plan_replay(record, current)
            except (MalformedRecord, ReplayError, ValueError) as error:
                return Replayed(Verdict.FAILED_AGAIN, str(error))
            steps = [f"{'delete' if w.is_delete else 'put'} {w.key.state}/{w.key.city_email}" for w in writes]
            if not steps:
                return Replayed(Verdict.WOULD_APPLY, "nothing to write")
            return Replayed(Verdict.WOULD_APPLY, "; ".join(steps) + " (the user's current state)")
        if letter.consumer == "ingest":
            from chalicelib.ingest.messages import Rejection, parse_message

            parsed = parse_message(letter.record)
            if isinstance(parsed, Rejection):
                return Replayed(Verdict.INVALID, parsed.reason)
            return Replayed(Verdict.WOULD_APPLY, f"store sighting of user {parsed.user_id}")
        if letter.consumer == "orders":
            return Replayed(Verdict.WOULD_APPLY, "process the order if it is still PENDING")
        return Replayed(Verdict.WOULD_APPLY, "publish the change event again")

    def _replicate(self, letter: DeadLetter) -> Replayed:
        try:
            report = self._replication.replay(letter.record)
        except ReplayError as error:
            return Replayed(Verdict.FAILED_AGAIN, str(error))
        detail = f"{report.applied} write(s) applied"
        if report.superseded:
            detail += f", {report.superseded} left to newer data"
        return Replayed(Verdict.APPLIED, detail)

    @staticmethod
    def _through(consumer: ConsumerRuntime, letter: DeadLetter) -> Replayed:
        """Run the consumer on the letter's record and read its Outcome (nothing is delivered or deleted)."""
        outcome = consumer.process([letter.record])
        if outcome.letters:  # failed again: the letter it would make is not sent, this one stays
            invalid = letter.consumer == "ingest" and outcome.letters[0].attempts == 0
            return Replayed(Verdict.INVALID if invalid else Verdict.FAILED_AGAIN, outcome.letters[0].reason)
        if outcome.left:
            (_, failure), *_ = outcome.left
            return Replayed(Verdict.FAILED_AGAIN, f"{failure.operation}: {failure.text}")
        return Replayed(Verdict.APPLIED)

    def _fanout(self, letter: DeadLetter) -> Replayed:
        return self._through(components.fanout_consumer(), letter)

    def _orders(self, letter: DeadLetter) -> Replayed:
        return self._through(components.order_processor(), letter)

    def _ingest(self, letter: DeadLetter) -> Replayed:
        return self._through(components.ingest_consumer(), letter)


@dataclass
class RedriveReport:
    """Verdicts by (queue, consumer, verdict, detail) and the letters shown."""

    verdicts: Counter[tuple[str, str, str, str]] = field(default_factory=Counter)
    deleted: int = 0
    delete_errors: list[str] = field(default_factory=list)

    def count(self, verdict: Verdict) -> int:
        return sum(n for (_, _, v, _), n in self.verdicts.items() if v == verdict.value)


def redrive_queue(inbox: DeadLetterInbox, replays: ConsumerReplays, report: RedriveReport, *, dry_run: bool,
                  consumers: Sequence[str] | None, limit: int | None, visibility: int, wait_seconds: int) -> None:
    """Replay every letter of one queue; delete the applied ones, release the rest at the end."""
    held: list[InboxMessage] = []
    seen: set[str] = set()
    for message in inbox.receive(visibility, limit, wait_seconds):
        if message.message_id in seen:  # visible again after a long run: already handled
            held.append(message)
            continue
        seen.add(message.message_id)
        letter = message.letter
        if letter is None and message.batch_failure is not None:
            if consumers and message.consumer not in consumers:
                outcome = Replayed(Verdict.FILTERED)
            else:
                outcome = replays.replay_batch(message.batch_failure, dry_run)
        elif letter is None:
            outcome = Replayed(Verdict.UNREADABLE, message.problem or body_preview(message.body))
        elif consumers and letter.consumer not in consumers:
            outcome = Replayed(Verdict.FILTERED)
        elif dry_run:
            outcome = replays.describe(letter)
        else:
            outcome = replays.replay(letter)
        report.verdicts[(inbox.label, message.consumer, outcome.verdict.value, _group(outcome))] += 1
        if outcome.verdict is Verdict.APPLIED:
            try:
                inbox.delete(message)
                report.deleted += 1
            except (ClientError, BotoCoreError, GaveUp) as error:  # applied twice later is harmless; say so
                report.delete_errors.append(f"{message.message_id}: {error}")
        else:
            held.append(message)
    inbox.release(held)


def _group(outcome: Replayed) -> str:
    # Applied letters group by verdict alone; failures keep their reason (that is what the operator acts on).
    return "" if outcome.verdict in (Verdict.APPLIED, Verdict.FILTERED) else outcome.detail


def run(args: argparse.Namespace) -> int:
    out = console()
    settings = settings_of(args)
    sqs = clients.client("sqs")
    replays = ConsumerReplays(settings, clients.client("dynamodb"), clients.client("dynamodbstreams"))
    store = LetterStore(clients.client("s3"), settings.dead_letter_bucket)
    inboxes = []
    if args.queue in ("stream", "all"):
        inboxes.append(DeadLetterInbox(sqs, settings.stream_dlq_url, label="stream DLQ", store=store))
    if args.queue in ("ingest", "all"):
        inboxes.append(DeadLetterInbox(sqs, settings.ingest_dlq_url, raw_is_ingest=True, label="ingest DLQ",
                                       store=store))
    report = RedriveReport()
    for inbox in inboxes:
        redrive_queue(inbox, replays, report, dry_run=args.dry_run, consumers=args.consumer, limit=args.limit,
                      visibility=args.visibility, wait_seconds=args.wait_seconds)

    table = Table(title="redrive (dry run: nothing applied or deleted)" if args.dry_run else "redrive")
    for column in ("queue", "consumer", "outcome", "count", "detail"):
        table.add_column(column, justify="right" if column == "count" else "left")
    for (queue, consumer, verdict, detail), count in sorted(report.verdicts.items()):
        table.add_row(queue, consumer, verdict, f"{count:,}", detail or "-")
    if report.verdicts:
        out.print(table)
    else:
        out.print("no dead letters")
    out.print(f"deleted {report.deleted:,} applied letter(s); SQS requests: "
              f"{sum(inbox.calls for inbox in inboxes):,}; S3 requests: {store.stats.calls:,}; "
              f"DynamoDB requests (replication): {replays.calls:,}")
    for problem in report.delete_errors:
        out.print(f"[yellow]applied but not deleted (a later redrive re-applies it harmlessly): {problem}[/yellow]")
    left = report.count(Verdict.FAILED_AGAIN) + report.count(Verdict.INVALID) + report.count(Verdict.UNREADABLE)
    if left:
        out.print(f"[yellow]{left:,} letter(s) left in the queue[/yellow]")
        return 1
    return 0
