"""`python -m ops <verb> --stage STAGE`: provision, backfill, verify, redrive, status.

Each verb lives in its own module exposing `HELP`, `add_arguments(parser)` and `run(args) -> int`.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

VERBS = ("provision", "backfill", "verify", "redrive", "status")


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
    return int(args.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
