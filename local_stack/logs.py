"""Readable logs of the flow: rich on a terminal, plain timestamped lines otherwise (pipes, tests)."""

from __future__ import annotations

import logging
import sys
import warnings

QUIET = ("werkzeug", "botocore", "boto3", "urllib3", "moto")


def configure(level: int = logging.INFO) -> None:
    """Root logging for the local stack process."""
    handler: logging.Handler
    if sys.stderr.isatty():
        from rich.console import Console
        from rich.logging import RichHandler

        # The terminal itself, fixed now: sys.stdout becomes the functions' output router (function_output.py).
        handler = RichHandler(console=Console(file=sys.stdout), show_path=False, markup=False, rich_tracebacks=True,
                              log_time_format="%H:%M:%S")
        handler.setFormatter(logging.Formatter("%(name)s  %(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.getLogger("moto").setLevel(logging.ERROR)
    # moto's CloudFormation skips resources it does not model (the subscriber queue policy); harmless here.
    warnings.filterwarnings("ignore", message="Tried to parse AWS::", category=UserWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
