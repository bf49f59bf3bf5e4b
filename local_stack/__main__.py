"""`python -m local_stack`: the whole system on one machine until Ctrl-C (what `make run` starts)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from dataclasses import fields

from local_stack.logs import configure
from local_stack.moto_patches import MotoPatchError
from local_stack.stack import LocalStack, Options
from tooling.stage import StageConfigError, stage_variables

logger = logging.getLogger("local_stack")

READY = "local stack ready"


def build_parser() -> argparse.ArgumentParser:
    defaults = Options()
    parser = argparse.ArgumentParser(prog="python -m local_stack", description=__doc__)
    parser.add_argument("--host", default=defaults.host, help="address to bind (default %(default)s)")
    parser.add_argument("--emulator-port", type=int, default=defaults.emulator_port,
                        help="moto server port (default %(default)s; 0 = any free port)")
    parser.add_argument("--api-port", type=int, default=defaults.api_port,
                        help="HTTP API port (default %(default)s; 0 = any free port)")
    parser.add_argument("--stage", default=defaults.stage, help="stage of .chalice/config.json (default %(default)s)")
    parser.add_argument("--poll-interval", type=float, default=defaults.poll_interval,
                        help="seconds between polls of a source that was busy lately (default %(default)s)")
    parser.add_argument("--idle-poll-interval", type=float, default=defaults.idle_poll_interval,
                        help="seconds between polls once a source has been quiet for a few seconds; Lambda's "
                             "rate for stream shards (default %(default)s)")
    parser.add_argument("--shard-refresh", type=float, default=defaults.shard_refresh,
                        help="seconds between looks for new stream shards (default %(default)s)")
    parser.add_argument("--max-retry-attempts", type=int, default=defaults.max_retry_attempts,
                        help="retries of a failing stream batch before moving on; -1 = forever, as Lambda's "
                             "default (default %(default)s)")
    parser.add_argument("--quiet", action="store_true", help="log warnings and errors only")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure(logging.WARNING if args.quiet else logging.INFO)
    options = Options(**{f.name: getattr(args, f.name) for f in fields(Options)})
    try:
        stage_variables(options.stage)  # before anything starts: an unknown stage is the operator's to fix
    except StageConfigError as error:
        logger.error("cannot start: %s", error)
        return 2
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        if stop.is_set():  # a second Ctrl-C while stopping: leave at once
            logger.warning("stopping now, without waiting")
            os._exit(130)
        logger.info("%s: stopping", signal.Signals(signum).name)
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, on_signal)
    stack = LocalStack(options)
    try:
        stack.start()
        assert stack.api is not None
        logger.info("%s: API %s, emulator %s, %d handler(s) polled — Ctrl-C to stop", READY, stack.api.url,
                    stack.emulator.endpoint, len(stack.pollers))
        while not stop.wait(0.5):
            pass
    except OSError as error:
        logger.error("cannot start: %s (is another local stack running? choose ports with --emulator-port "
                     "and --api-port)", error)
        return 1
    except MotoPatchError as error:
        logger.error("cannot start: %s", error)
        return 1
    finally:
        stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
