"""`python -m ops <verb> --stage STAGE`: provision, backfill, verify, redrive, status.

Each verb lives in its own module exposing `HELP`, `add_arguments(parser)` and `run(args) -> int`.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from contextlib import nullcontext

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.config import ConfigurationError
from ops.stage_options import UsageError, stage_environment
from tooling.stage import StageConfigError

VERBS = ("provision", "backfill", "verify", "redrive", "status")
# Verbs on an existing stage: they run with its variables (provision creates or updates the stage itself).
STAGE_VERBS = ("backfill", "verify", "redrive", "status")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ops", description="Operate a stream-pipeline stage.")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    for verb in VERBS:
        module = importlib.import_module(f"ops.{verb}")
        sub = verbs.add_parser(verb, help=module.HELP, description=module.HELP)
        sub.add_argument("--stage", required=True, help="stage in .chalice/config.json (dev, prod, ...)")
        module.add_arguments(sub)
        sub.set_defaults(run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    prog = f"python -m ops {args.verb}"
    try:
        with stage_environment(args.stage, args.config) if args.verb in STAGE_VERBS else nullcontext():
            return int(args.run(args) or 0)
    except (StageConfigError, ConfigurationError, UsageError) as error:  # the operator's to fix: one line
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 2
    except BotoCoreError as error:  # no credentials, no region, endpoint not reachable (local stack not running)
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 1
    except ClientError as error:  # e.g. a table of a stage not provisioned (in this account, region, endpoint)
        code = error.response.get("Error", {}).get("Code", "")
        hint = f" (is stage {args.stage} provisioned here?)" if "NotFound" in code or "NonExistent" in code else ""
        print(f"{prog}: error: {error}{hint}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
