"""`ops verify` at scale against a moto server on loopback: peak RSS and wall time, beside a baseline.

    .venv/bin/python -m benchmarks.verify_at_scale [--sizes 10000 100000] [--baseline main] [--skip-baseline]

One run: a moto server in its own process (on a free port, reached over HTTP as the local stack's emulator
is), a stage deployed from infra/template.yaml, N users in the source and their projections in the target with
drift planted (3 missing, 3 stale — one only by DynamoDB type, `active` stored as the number 1 for `true` —
and 2 orphaned). For each size, `python -m ops verify` runs as a fresh process from this tree and from the
baseline (a `git archive` of `--baseline`, same virtualenv), and then as two processes splitting the run
(`--total-segments 2`) at once. Each process reports its own peak RSS (VmHWM, read as it exits), its wall
time comes from the clock; the drift it reported is parsed from its output. Nothing here runs in `make test`.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

PROJECT_DIR = Path(__file__).resolve().parents[1]
if str(PROJECT_DIR) not in sys.path:
    sys.path.insert(0, str(PROJECT_DIR))

import boto3  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from chalicelib.replication.projection import project_user  # noqa: E402
from chalicelib.stream.images import typed_item  # noqa: E402
from tooling.infrastructure import deploy_stack, stage_environment  # noqa: E402

STAGE = "bench"
PLANTED = {"missing": 3, "stale": 3, "orphaned": 2}

EMULATOR = """
import logging
logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import make_server
server = make_server("127.0.0.1", 0, DomainDispatcherApplication(create_backend_app), threaded=True,
                     request_handler=MotoRequestHandler)
print(server.port, flush=True)
server.serve_forever()
"""


@contextmanager
def moto_server() -> Iterator[str]:
    """A moto server in a process of its own on a free loopback port; its endpoint URL."""
    process = subprocess.Popen([sys.executable, "-c", EMULATOR], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        yield f"http://127.0.0.1:{int(process.stdout.readline())}"
    finally:
        process.terminate()
        process.wait(timeout=30)


def user(n: int) -> dict[str, Any]:
    return {"email": f"user{n:07d}@example.com", "state": ["CA", "NY", "TX", "WA"][n % 4],
            "city": ["Springfield", "Riverside", "Fairview", "Greenville"][n % 4 // 2 + n % 3 % 2],
            "zipcode": f"{n % 100000:05d}", "active": n % 2 == 0,
            "created_at": "2026-11-01T00:00:00.000Z", "updated_at": "2026-11-01T00:00:00.000Z"}


def seed(dynamodb: Any, variables: dict[str, str], start: int, stop: int) -> None:
    """Users start..stop-1 and their projections, with the planted drift among the first of them."""
    users = [user(n) for n in range(start, stop)]
    targets = [project_user(u) for u in users]
    if start == 0:  # plant the drift once
        targets[0] = targets[1] = targets[2] = None  # missing
        targets[3] = {**targets[3], "city": "Wrongtown"}  # type: ignore[dict-item]
        targets[5] = {k: v for k, v in targets[5].items() if k != "active"}  # type: ignore[union-attr]
        assert users[4]["active"] is True
        targets[4] = {**targets[4], "active": Decimal(1)}  # type: ignore[dict-item]  # true stored as 1
        targets += [project_user({**user(n), "email": f"orphan{n}@example.com"}) for n in range(2)]
    chunks = [(variables["USERS_TABLE"], users[i:i + 25]) for i in range(0, len(users), 25)]
    items = [t for t in targets if t is not None]
    chunks += [(variables["USERS_BY_LOCATION_TABLE"], items[i:i + 25]) for i in range(0, len(items), 25)]

    def write(chunk: tuple[str, list[dict[str, Any]]]) -> None:
        table, batch = chunk
        pending: list[dict[str, Any]] = [{"PutRequest": {"Item": typed_item(item)}} for item in batch]
        while pending:
            answer = dynamodb.batch_write_item(RequestItems={table: pending})
            pending = answer.get("UnprocessedItems", {}).get(table, [])

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(write, chunks))


@dataclass
class Measured:
    label: str
    users: int
    seconds: float
    peak_rss_mb: float
    exit_code: int
    drift: dict[str, int]


def drift_of(output: str) -> dict[str, int]:
    found = {}
    for kind in PLANTED:
        match = re.search(rf"│ {kind}\s+│\s+([\d,]+) │", output)
        if match:
            found[kind] = int(match.group(1).replace(",", ""))
    return found


@dataclass
class Running:
    label: str
    users: int
    started: float
    process: subprocess.Popen[str]


# `python -m ops ...` that reports its own peak RSS (VmHWM) on its last line. The kernel's rusage of a child is
# no use here: a child's ru_maxrss starts at its parent's RSS at fork, and the parent holds the seeded data.
MEASURED_OPS = """
import os, runpy, sys
sys.argv = ["ops", *sys.argv[1:]]
if os.environ.get("BENCH_READ_TIMEOUT"):  # both trees build their clients from this one Config
    from botocore.config import Config
    import chalicelib.clients as clients
    clients._CONFIG = clients._CONFIG.merge(Config(read_timeout=float(os.environ["BENCH_READ_TIMEOUT"])))
try:
    runpy.run_module("ops", run_name="__main__", alter_sys=True)
finally:
    hwm = [line for line in open("/proc/self/status") if line.startswith("VmHWM:")][0].split()[1]
    print(f"peak-rss-kib {hwm}", flush=True)
"""


def run_verify(label: str, tree: Path, users: int, env: dict[str, str], config: Path, *options: str) -> Running:
    command = [sys.executable, "-c", MEASURED_OPS, "verify", "--stage", STAGE, "--config", str(config),
               "--no-progress", *options]
    process = subprocess.Popen(command, cwd=tree, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
    return Running(label, users, time.monotonic(), process)


def finish(runs: Sequence[Running]) -> list[Measured]:
    """Wait for each process: its wall time, its peak RSS, the drift it reported."""
    measured = []
    with ThreadPoolExecutor(max_workers=len(runs)) as pool:  # drain the pipes, so no child blocks on output
        outputs = [pool.submit(run.process.communicate) for run in runs]
        for run, output in zip(runs, outputs, strict=True):
            text = output.result()[0]
            seconds = time.monotonic() - run.started
            peak = re.search(r"^peak-rss-kib (\d+)$", text, re.MULTILINE)
            drift = drift_of(text)
            stopped = "verify stopped" in text or "verify interrupted" in text  # exit 1 too, like drift
            if run.process.returncode not in (0, 1) or len(drift) < len(PLANTED) or peak is None or stopped:
                print(f"--- {run.label}, {run.users:,} users: exit {run.process.returncode}\n{text[-3000:]}",
                      file=sys.stderr)
            measured.append(Measured(run.label, run.users, seconds, int(peak.group(1)) / 1024 if peak else -1,
                                     run.process.returncode, drift))
            print(f"{run.label}, {run.users:,} users: {seconds:.1f} s, peak RSS {measured[-1].peak_rss_mb:.0f} MB, "
                  f"drift {drift}", flush=True)
    return measured


def baseline_tree(ref: str, into: Path) -> Path:
    """The project at `ref` (`git archive`), to run its verify as the baseline."""
    archive = subprocess.run(["git", "archive", "--format=tar", ref], cwd=PROJECT_DIR, capture_output=True,
                             check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.verify_at_scale", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000], help="users, ascending")
    parser.add_argument("--baseline", default="main", help="git ref whose verify is the baseline (default main)")
    parser.add_argument("--skip-baseline", action="store_true", help="measure this tree only")
    parser.add_argument("--baseline-dir", type=Path, help="an extracted baseline tree instead of --baseline")
    parser.add_argument("--segments", type=int, default=4, help="scan threads per verify process (default 4)")
    parser.add_argument("--runs", nargs="+", choices=("baseline", "this", "shares"),
                        default=["baseline", "this", "shares"], help="which verifies to run (default all)")
    parser.add_argument("--read-timeout", type=float, default=None,
                        help="seconds a verify waits for one answer (default the app's own, 30): moto's Scan "
                             "of a large table without a Limit takes longer")
    parser.add_argument("--page-size", type=int, default=None,
                        help="this tree's --page-size (default: verify's own); the baseline has none")
    args = parser.parse_args(argv)
    console = Console(highlight=False)
    console = console if console.is_terminal else Console(highlight=False, width=140)
    results: list[Measured] = []
    with tempfile.TemporaryDirectory(prefix="verify-bench-") as scratch, moto_server() as endpoint:
        work = Path(scratch)
        wanted = set(args.runs) - ({"baseline"} if args.skip_baseline else set())
        baseline = None if "baseline" not in wanted else args.baseline_dir or baseline_tree(args.baseline,
                                                                                            work / "baseline")
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
                   AWS_DEFAULT_REGION="us-east-1", PYTHONDONTWRITEBYTECODE="1")
        if args.read_timeout:
            env["BENCH_READ_TIMEOUT"] = str(args.read_timeout)
        session = boto3.session.Session(aws_access_key_id="bench", aws_secret_access_key="bench",
                                        region_name="us-east-1")
        variables = stage_environment(deploy_stack(session.client("cloudformation", endpoint_url=endpoint),
                                                   STAGE, poll=0.1))
        config = work / "config.json"
        config.write_text(json.dumps({"version": "2.0", "app_name": "stream-pipeline",
                                      "stages": {STAGE: {"environment_variables": variables}}}))
        dynamodb = session.client("dynamodb", endpoint_url=endpoint)
        seeded = 0
        segments = ("--segments", str(args.segments))
        ours = (*segments, *(("--page-size", str(args.page_size)) if args.page_size else ()))
        for size in sorted(args.sizes):
            started = time.monotonic()
            seed(dynamodb, variables, seeded, size)
            seeded = size
            console.print(f"seeded {size:,} users in {time.monotonic() - started:.0f} s")
            if baseline is not None:
                results += finish([run_verify(f"baseline ({args.baseline})", baseline, size, env, config,
                                              *segments)])
            if "this" in wanted:
                results += finish([run_verify("this tree", PROJECT_DIR, size, env, config, *ours)])
            if "shares" in wanted:
                results += finish([run_verify(f"this tree, share {i} of 2", PROJECT_DIR, size, env, config, *ours,
                                              "--segment", str(i), "--total-segments", "2",
                                              "--checkpoint", str(work / f"share-{i}.json")) for i in (0, 1)])
    table = Table(title="ops verify against a moto server on loopback (planted: "
                        + ", ".join(f"{k} {v}" for k, v in PLANTED.items()) + ")")
    for column in ("users", "verify", "wall s", "peak RSS MB", "exit", "missing", "stale", "orphaned"):
        table.add_column(column, justify="left" if column == "verify" else "right")
    for m in results:
        table.add_row(f"{m.users:,}", m.label, f"{m.seconds:.1f}", f"{m.peak_rss_mb:.0f}", str(m.exit_code),
                      *(str(m.drift.get(kind, "?")) for kind in PLANTED))
    console.print(table)
    for size in sorted(args.sizes):
        shares = [m for m in results if m.users == size and "share" in m.label]
        together = {kind: sum(m.drift.get(kind, 0) for m in shares) for kind in PLANTED}
        if shares:
            console.print(f"{size:,} users: planted {PLANTED}; the two shares together found {together}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
