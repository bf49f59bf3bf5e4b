"""What every operator verb shares: the stage's settings, its state directory, and the console."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from chalicelib.config import Settings
from ops.stage import CONFIG_PATH, PROJECT_DIR, stage_settings

STATE_DIR = PROJECT_DIR / ".ops-state"


def add_config_option(parser: argparse.ArgumentParser) -> None:
    """`--config PATH`: the Chalice config to read the stage from (default .chalice/config.json)."""
    parser.add_argument("--config", type=Path, default=CONFIG_PATH,
                        help="Chalice config holding the stage's variables (default: .chalice/config.json)")


def settings_of(args: argparse.Namespace) -> Settings:
    """The stage's settings: config.json's stage variables, overridden by the process environment."""
    return stage_settings(args.stage, getattr(args, "config", CONFIG_PATH))


def console() -> Console:
    """Where verbs print; when stdout is not a terminal (logs, CI) tables get a wide fixed width."""
    out = Console(highlight=False)
    return out if out.is_terminal else Console(highlight=False, width=160)
