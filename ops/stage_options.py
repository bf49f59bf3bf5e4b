"""What every operator verb shares: the stage's settings, its state directory, and the console."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import boto3
from rich.console import Console

from chalicelib.config import Settings, stage_region
from ops.resumable_scan import ScanShare
from tooling.stage import CONFIG_PATH, PROJECT_DIR, stage_settings, stage_variables

STATE_DIR = PROJECT_DIR / ".ops-state"


def add_config_option(parser: argparse.ArgumentParser) -> None:
    """`--config PATH`: the Chalice config to read the stage from (default .chalice/config.json)."""
    parser.add_argument("--config", type=Path, default=CONFIG_PATH,
                        help="Chalice config holding the stage's variables (default: .chalice/config.json)")


def int_between(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse `type`: an integer in [low, high], else a usage error naming the range."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if value < low or (high is not None and value > high):
            bounds = f"at least {low}" if high is None else f"from {low} to {high}"
            raise argparse.ArgumentTypeError(f"must be {bounds}, got {value}")
        return value

    return parse


class UsageError(ValueError):
    """Options that do not go together (said in one line, exit 2, as argparse does)."""


# What SQS accepts: a message hidden for 0 s would come straight back to the same run, which never ends.
VISIBILITY_SECONDS = int_between(1, 43200)
WAIT_SECONDS = int_between(0, 20)


def add_scan_options(parser: argparse.ArgumentParser, verb: str) -> None:
    """How a whole-table run is split and resumed (see ops/resumable_scan.py): shared by backfill and verify."""
    parser.add_argument("--segments", type=int_between(1, 1000), default=4,
                        help="parallel scan segments (threads) of this process (default 4)")
    parser.add_argument("--segment", type=int_between(0), default=0, metavar="I",
                        help="with --total-segments N: this process's share, 0..N-1 (default 0)")
    parser.add_argument("--total-segments", type=int_between(1, 1000), default=1, metavar="N",
                        help="split the run across N processes or machines, each run with the same --segments "
                             "and its own --segment; together they cover every item once (default 1)")
    parser.add_argument("--page-size", type=int_between(1, 10000), default=500,
                        help="items per Scan page (default 500); memory is a page per segment")
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help=f"checkpoint file (default .ops-state/<stage>-{verb}[-<I>-of-<N>].json)")
    parser.add_argument("--restart", action="store_true", help="discard an existing checkpoint and start over")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (logs, CI)")


def scan_share_of(args: argparse.Namespace) -> ScanShare:
    """This process's share of the run (UsageError when --segment is not below --total-segments)."""
    try:
        return ScanShare(args.segments, args.segment, args.total_segments)
    except ValueError as error:
        raise UsageError(str(error)) from error


def checkpoint_path(args: argparse.Namespace, verb: str) -> Path:
    """`--checkpoint`, else `.ops-state/<stage>-<verb>.json` (one file per share of a split run)."""
    if args.checkpoint is not None:
        return Path(args.checkpoint)
    share = f"-{args.segment}-of-{args.total_segments}" if args.total_segments > 1 else ""
    return STATE_DIR / f"{args.stage}-{verb}{share}.json"


def settings_of(args: argparse.Namespace) -> Settings:
    """The stage's settings: config.json's stage variables, overridden by the process environment."""
    return stage_settings(args.stage, getattr(args, "config", CONFIG_PATH))


@contextmanager
def stage_environment(stage: str, path: Path = CONFIG_PATH) -> Iterator[dict[str, str]]:
    """The process environment as the stage's Lambda functions see it, for the duration of a verb.

    The verbs run the app's own consumers (redrive), which read their configuration from the environment:
    each of the stage's variables not already set in the process is set from config.json. When no AWS region
    is configured at all, the stage's region is taken from its ARNs (that is where its resources are), so
    `AWS_ENDPOINT_URL` and any credentials are all the local stack needs. Everything is restored afterwards.
    """
    variables = stage_variables(stage, path)
    added = {name: value for name, value in variables.items() if value and not os.environ.get(name)}
    region = stage_region(variables)
    if region and not boto3.session.Session().region_name:
        added["AWS_DEFAULT_REGION"] = region
    before = {name: os.environ.get(name) for name in added}
    os.environ.update(added)  # clients are cached per endpoint and region: a region set here gets its own
    try:
        yield variables
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def console() -> Console:
    """Where verbs print; when stdout is not a terminal (logs, CI) tables get a wide fixed width."""
    out = Console(highlight=False)
    return out if out.is_terminal else Console(highlight=False, width=160)
