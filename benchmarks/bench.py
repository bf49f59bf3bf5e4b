"""`make bench`: the figures of BENCHMARKS.md, each beside its goal, from one run on this machine.

    .venv/bin/python -m benchmarks.bench [--quick] [--sizes 1000,10000] [--repeats 3] [--users 10000] [--out PATH]

1. Consumers, three columns in one run, on a moto server on loopback (the local stack's patched emulator, in a
   process of its own, the infrastructure template deployed; the bus has no rule, as AWS does not wait for
   targets): *naive* (one PutItem / PutEvents / PutItem per record), *floor* (the very requests the project
   makes, recorded and sent raw), *project* (app.py's handlers called as Lambda calls them, batches of 100 in
   Lambda's shape). Columns are interleaved, their order rotated per repeat; medians are quoted.
2. Handler CPU per record with stub clients (no I/O), and tracemalloc's peak over a 10,000-record run.
3. Cold start: `benchmarks/cold_import.py`'s fresh processes, and each handler's first invocation (clients made).
4. Local stack: POST → queryable and POST → event, fresh and after `--users` users; users/s with 4 clients.

`--quick` runs every part with tiny sizes (the test suite runs it to check the harness) and the local stack
part not at all. Figures are written to `--out` (default BENCHMARKS.md) with the machine, the command and the date.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

PROJECT_DIR = Path(__file__).resolve().parents[1]
if str(PROJECT_DIR) not in sys.path:
    sys.path.insert(0, str(PROJECT_DIR))

from benchmarks import cold_import  # noqa: E402
from tests.support.events import insert, modify, sqs_message  # noqa: E402  (Lambda's exact record shapes)

BATCH = 100  # the handlers' batch_size in app.py
CONSUMERS = ("replication", "fanout", "ingest")
HANDLERS = {"replication": "replicate_users", "fanout": "fanout_users", "ingest": "ingest_device_metadata"}
COLUMNS = ("naive", "floor", "project")


# --- workloads: records exactly as Lambda delivers them -------------------------------------------------

def user(index: int, city: str | None = None) -> dict[str, Any]:
    """A user item as the API stores it."""
    return {"email": f"bench-{index}@example.com", "state": f"S{index % 50:02d}", "city": city or f"City {index % 20}",
            "zipcode": f"{index % 100000:05d}", "active": True, "created_at": "2026-11-30T00:00:00.000Z",
            "updated_at": "2026-11-30T00:00:00.000Z"}


def stream_records(count: int, table: str) -> list[dict[str, Any]]:
    """Users-stream records: three INSERTs to one MODIFY that moves a user to another city."""
    records = []
    for index in range(count):
        if index % 4 == 3:
            old = user(index)
            records.append(modify(old, {**old, "city": "Elsewhere", "updated_at": "2026-11-30T01:00:00.000Z"},
                                  table=table))
        else:
            records.append(insert(user(index), table=table))
    return records


def queue_records(count: int) -> list[dict[str, Any]]:
    """Ingest-queue messages as Lambda delivers them."""
    return [sqs_message({"user_id": f"bench-{index}", "device": "phone", "location": f"City {index % 20}"})
            for index in range(count)]


def batches(records: Sequence[Any], size: int = BATCH) -> list[dict[str, Any]]:
    """Lambda events of `size` records."""
    return [{"Records": list(records[start:start + size])} for start in range(0, len(records), size)]


def workload(consumer: str, count: int, table: str) -> list[dict[str, Any]]:
    """The Lambda events one consumer is given."""
    return batches(queue_records(count) if consumer == "ingest" else stream_records(count, table))


# --- calling handlers as Lambda does ---------------------------------------------------------------------

def handler(consumer: str) -> Callable[[dict[str, Any], Any], Any]:
    """app.py's handler for `consumer` (Chalice's wrapper: `handler(event, context)`)."""
    import app

    function: Callable[[dict[str, Any], Any], Any] = getattr(app, HANDLERS[consumer])
    return function


def invoke(consumer: str, event: dict[str, Any]) -> Any:
    """One invocation with a Lambda context."""
    from chalice.local import LambdaContext

    function = handler(consumer)
    return function(event, LambdaContext(f"stream-pipeline-bench-{HANDLERS[consumer]}", 128, 60_000))


@contextmanager
def quiet_stdout() -> Iterator[None]:
    """The handlers' JSON log lines go to /dev/null (Lambda ships them; the terminal should not scroll)."""
    import logging

    sink = open(os.devnull, "w")  # noqa: SIM115 - closed below
    saved = sys.stdout
    sys.stdout = sink
    try:
        yield
    finally:
        sys.stdout = saved
        sink.close()
        from chalicelib.observability import logs

        logs.unconfigure()
        logging.getLogger().handlers.clear()


# --- 1. consumers against the emulator ----------------------------------------------------------------

class CallCounter:
    """Counts AWS requests made by the clients it is registered on (botocore's before-call event)."""

    def __init__(self) -> None:
        self.calls: dict[str, int] = {}

    def __call__(self, model: Any = None, **_: Any) -> None:
        name = getattr(model, "name", "?")
        self.calls[name] = self.calls.get(name, 0) + 1

    def total(self) -> int:
        return sum(self.calls.values())

    def reset(self) -> None:
        self.calls = {}


class Recorder:
    """A client stand-in that records requests and answers as AWS does when all succeeds (to learn the floor)."""

    def __init__(self, keep: bool = True) -> None:
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self._keep = keep  # False: answer only (CPU and memory runs hold nothing of their own)

    def _record(self, operation: str, request: dict[str, Any]) -> None:
        if self._keep:
            self.requests.append((operation, request))

    def batch_write_item(self, **request: Any) -> dict[str, Any]:
        self._record("batch_write_item", request)
        return {"UnprocessedItems": {}}

    def put_events(self, **request: Any) -> dict[str, Any]:
        self._record("put_events", request)
        # Ids cheap to make: the stub's own work is not the handler's (uuid4 was ~5 % of fan-out's CPU figure).
        entries = [{"EventId": f"event-{index}"} for index in range(len(request["Entries"]))]
        return {"FailedEntryCount": 0, "Entries": entries}

    def send_message_batch(self, **request: Any) -> dict[str, Any]:
        self._record("send_message_batch", request)
        return {"Successful": [{"Id": entry["Id"]} for entry in request["Entries"]], "Failed": []}

    def delete_message_batch(self, **request: Any) -> dict[str, Any]:
        self._record("delete_message_batch", request)
        return {"Successful": [{"Id": entry["Id"]} for entry in request["Entries"]], "Failed": []}


def stub_clients(recorder: Any) -> None:
    """Every client the handlers ask for is `recorder` (no I/O)."""
    from chalicelib import clients

    clients.reset()
    for service in ("dynamodb", "events", "sqs", "s3"):
        clients.override(service, recorder)


def recorded_requests(consumer: str, events: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """The requests the project makes for `events`, learned with a recording stand-in (the floor's calls)."""
    recorder = Recorder()
    stub_clients(recorder)
    try:
        with quiet_stdout():
            for event in events:
                invoke(consumer, event)
    finally:
        from chalicelib import clients

        clients.reset()
    return recorder.requests


def naive_requests(consumer: str, floor: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
    """One request per write or event: the floor's requests taken apart (PutItem/DeleteItem, one-entry PutEvents)."""
    naive: list[tuple[str, dict[str, Any]]] = []
    for operation, request in floor:
        if operation == "put_events":
            naive += [("put_events", {"Entries": [entry]}) for entry in request["Entries"]]
        elif operation == "batch_write_item":
            for table, writes in request["RequestItems"].items():
                for write in writes:
                    if "PutRequest" in write:
                        naive.append(("put_item", {"TableName": table, "Item": write["PutRequest"]["Item"]}))
                    else:
                        naive.append(("delete_item", {"TableName": table, "Key": write["DeleteRequest"]["Key"]}))
    return naive


def send_raw(requests: list[tuple[str, dict[str, Any]]]) -> None:
    """Send recorded requests with the shared clients; any failure is an error (nothing may be lost)."""
    from chalicelib import clients

    services = {"batch_write_item": "dynamodb", "put_item": "dynamodb", "delete_item": "dynamodb",
                "put_events": "events"}
    for operation, request in requests:
        answer = getattr(clients.client(services[operation]), operation)(**request)
        if answer.get("UnprocessedItems") or answer.get("FailedEntryCount"):
            raise RuntimeError(f"{operation} left work undone: {answer}")


@dataclass
class ColumnRun:
    """One column of one consumer at one size, every repeat."""

    seconds: list[float] = field(default_factory=list)
    calls: list[int] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


@dataclass
class ConsumerFigures:
    """Three columns of one consumer at one size."""

    consumer: str
    records: int
    columns: dict[str, ColumnRun]

    def rate(self, column: str) -> float:
        return self.records / self.columns[column].median

    def ratio(self, faster: str, slower: str) -> float:
        """How many times `slower` takes `faster`'s time (project/naive speed-up: naive over project)."""
        return self.columns[slower].median / self.columns[faster].median


class Emulator:
    """The local stack's patched moto server in a process of its own (the handlers' CPU is not the server's)."""

    SERVE = ("from local_stack.emulator import Emulator; import sys; e = Emulator(port=0); e.start(); "
             "print(e.endpoint, flush=True); sys.stdin.read(); e.stop()")

    def __init__(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        self.process = subprocess.Popen([sys.executable, "-c", self.SERVE], cwd=PROJECT_DIR, env=env,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.DEVNULL, text=True)  # its request log
        assert self.process.stdout is not None
        self.endpoint = self.process.stdout.readline().strip()
        if not self.endpoint.startswith("http://127.0.0.1:"):
            self.stop()
            raise RuntimeError("emulator did not start")

    def stop(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.close()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def deploy(endpoint: str) -> dict[str, str]:
    """The template as the local stack deploys it, this process pointed at it; the bus left without a rule."""
    import boto3

    from local_stack.emulator import point_process_at
    from tooling.infrastructure import deploy_stack, stage_environment
    from tooling.stage import stage_variables

    point_process_at(endpoint)
    outputs = deploy_stack(boto3.client("cloudformation"), "dev", poll=0.1)
    variables = {**stage_variables("dev"), **stage_environment(outputs)}
    sqs = boto3.client("sqs")
    for name, value in list(variables.items()):
        if name.endswith("_URL") and ".amazonaws.com/" in value:
            variables[name] = sqs.get_queue_url(QueueName=value.rsplit("/", 1)[-1])["QueueUrl"]
    os.environ.update(variables)
    events = boto3.client("events")
    bus = variables["EVENT_BUS_NAME"]
    for rule in events.list_rules(EventBusName=bus)["Rules"]:  # AWS returns from PutEvents without waiting for targets
        targets = [t["Id"] for t in events.list_targets_by_rule(Rule=rule["Name"], EventBusName=bus)["Targets"]]
        if targets:
            events.remove_targets(Rule=rule["Name"], EventBusName=bus, Ids=targets)
        events.delete_rule(Name=rule["Name"], EventBusName=bus)
    return variables


ROUND = 1000  # records per interleaved round


def measure_consumers(variables: dict[str, str], sizes: Sequence[int], repeats: int,
                      say: Callable[[str], None]) -> list[ConsumerFigures]:
    """Every consumer at every size: naive, floor and project, interleaved in rounds of 1,000 records (the column
    order rotated each round), so a machine that slows down or speeds up slows every column alike. A size of up to
    1,000 records is run `repeats` times (one round each) and its median quoted; a larger one once, in its rounds."""
    from chalicelib import clients

    try:
        counter = CallCounter()
        figures = []
        for size in sizes:
            for consumer in CONSUMERS:
                events = workload(consumer, size, variables["USERS_TABLE"])
                rounds = [events[start:start + ROUND // BATCH] for start in range(0, len(events), ROUND // BATCH)]
                floors = [recorded_requests(consumer, chunk) for chunk in rounds]  # resets the clients
                for service in ("dynamodb", "events", "sqs", "s3"):  # the handlers' own (cached) clients, counted
                    clients.client(service).meta.events.register("before-call.*.*", counter)
                columns = {name: ColumnRun() for name in COLUMNS}
                for repeat in range(repeats if size <= ROUND else 1):
                    totals = dict.fromkeys(COLUMNS, 0.0)
                    calls = dict.fromkeys(COLUMNS, 0)
                    for index, (chunk, floor) in enumerate(zip(rounds, floors, strict=True)):
                        runs: dict[str, Callable[[], None]] = {
                            "naive": partial(send_raw, naive_requests(consumer, floor)),
                            "floor": partial(send_raw, floor),
                            "project": partial(run_project, consumer, chunk)}
                        turn = (repeat + index) % 3
                        for name in COLUMNS[turn:] + COLUMNS[:turn]:
                            counter.reset()
                            with quiet_stdout():
                                started = time.perf_counter()
                                runs[name]()
                                totals[name] += time.perf_counter() - started
                            calls[name] += counter.total()
                    for name in COLUMNS:
                        columns[name].seconds.append(totals[name])
                        columns[name].calls.append(calls[name])
                result = ConsumerFigures(consumer, size, columns)
                figures.append(result)
                say(f"{consumer} × {size:,}: " + ", ".join(
                    f"{name} {columns[name].median:.2f} s / {columns[name].calls[-1]} calls" for name in COLUMNS))
        return figures
    finally:
        clients.reset()


def run_project(consumer: str, events: list[dict[str, Any]]) -> None:
    """The project column: each Lambda event to its handler, in order."""
    for event in events:
        invoke(consumer, event)


# --- 2. handler CPU and memory with stub clients -----------------------------------------------------------

@dataclass
class CpuFigures:
    consumer: str
    records: int
    us_per_record: list[float]
    peak_mib: float
    before_us: list[float] = field(default_factory=list)  # the same runs on the `--before` checkout
    before_peak_mib: float | None = None

    @property
    def median(self) -> float:
        return statistics.median(self.us_per_record)


def cpu_sample(records: int, memory: bool) -> dict[str, dict[str, float | None]]:
    """One run per consumer in this process (the `app`/`chalicelib` first on sys.path): CPU µs per record with
    stub clients after one warm-up batch, and, with `memory`, tracemalloc's peak over a second run (MiB)."""
    result: dict[str, dict[str, float | None]] = {}
    try:
        for consumer in CONSUMERS:
            events = workload(consumer, records, "stream-pipeline-dev-users")
            stub_clients(Recorder(keep=False))
            with quiet_stdout():
                invoke(consumer, events[0])  # imports and first-use work are the cold start's, not per record
                started = time.process_time()
                for event in events:
                    invoke(consumer, event)
                seconds = time.process_time() - started
                peak = None
                if memory:
                    tracemalloc.start()
                    for event in events:
                        invoke(consumer, event)
                    peak = tracemalloc.get_traced_memory()[1] / 2**20
                    tracemalloc.stop()
            result[consumer] = {"us": seconds / records * 1e6, "peak_mib": peak}
    finally:
        from chalicelib import clients

        clients.reset()
    return result


CPU_SAMPLE = """
import json, sys
sys.path.insert(0, {project!r})
from benchmarks import bench
sys.path.insert(0, {tree!r})  # its app.py and chalicelib, this harness
print("BENCH " + json.dumps(bench.cpu_sample({records}, {memory})))
"""


def cpu_sample_of(tree: Path, records: int, memory: bool) -> dict[str, dict[str, float | None]]:
    """`cpu_sample` in a fresh process on the checkout `tree`."""
    code = CPU_SAMPLE.format(project=str(PROJECT_DIR), tree=str(tree), records=records, memory=memory)
    out = subprocess.run([sys.executable, "-c", code], cwd=tree, env=dict(os.environ), check=True,
                         capture_output=True, text=True).stdout
    line = [text for text in out.splitlines() if text.startswith("BENCH ")][-1]
    sample: dict[str, dict[str, float | None]] = json.loads(line[len("BENCH "):])
    return sample


def measure_cpu(records: int, repeats: int, before: Path | None, say: Callable[[str], None]) -> list[CpuFigures]:
    """Per consumer: µs/record over `repeats` fresh processes, and the peak memory of one run; with `before`, the
    same on that checkout, its processes interleaved with these (a busy machine slows both alike)."""
    trees = [PROJECT_DIR] + ([before] if before else [])
    samples: dict[Path, list[dict[str, dict[str, float | None]]]] = {tree: [] for tree in trees}
    for repeat in range(repeats):
        for tree in trees if repeat % 2 == 0 else trees[::-1]:
            samples[tree].append(cpu_sample_of(tree, records, memory=repeat == 0))

    def us(tree: Path, consumer: str) -> list[float]:
        return [float(sample[consumer]["us"] or 0) for sample in samples[tree]]

    figures = []
    for consumer in CONSUMERS:
        figure = CpuFigures(consumer, records, us(PROJECT_DIR, consumer),
                            float(samples[PROJECT_DIR][0][consumer]["peak_mib"] or 0))
        if before:
            figure.before_us = us(before, consumer)
            figure.before_peak_mib = float(samples[before][0][consumer]["peak_mib"] or 0)
        figures.append(figure)
        say(f"{consumer}: {figure.median:.1f} µs/record (median of {repeats})"
            + (f", before {statistics.median(figure.before_us):.1f}" if before else "")
            + f", peak {figure.peak_mib:.1f} MiB")
    return figures


def checkout(ref_or_dir: str, scratch: Path) -> Path:
    """A directory: itself; otherwise a git ref of this repository, exported into `scratch`."""
    if Path(ref_or_dir).is_dir():
        return Path(ref_or_dir).resolve()
    archive = subprocess.run(["git", "archive", ref_or_dir], cwd=PROJECT_DIR, check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(scratch)], input=archive, check=True)
    return scratch


# --- 3. cold start ---------------------------------------------------------------------------------------------

FIRST_INVOCATION = """
import json, sys, time
sys.path.insert(0, {project!r})
from tests.support.events import insert, sqs_message
from chalice.local import LambdaContext
import app
consumer = {consumer!r}
if consumer == "ingest":
    event = {{"Records": [sqs_message({{"user_id": "cold", "device": "d", "location": "l"}})]}}
else:
    event = {{"Records": [insert({{"email": "cold@example.com", "state": "NY", "city": "Albany", "active": True}},
                                table="stream-pipeline-dev-users")]}}
function = getattr(app, {handler!r})
times = []
for _ in range(2):
    started = time.perf_counter()
    function(event, LambdaContext("cold", 128, 60000))
    times.append(time.perf_counter() - started)
sys.__stdout__.write("\\nBENCH " + json.dumps(times) + "\\n")
"""


@dataclass
class ColdFigures:
    import_ms: float
    baseline_ms: float
    runs: int
    first_ms: dict[str, float]
    second_ms: dict[str, float]

    @property
    def ratio(self) -> float:
        return self.import_ms / self.baseline_ms


def measure_cold(runs: int, invocations: int, say: Callable[[str], None]) -> ColdFigures:
    """cold_import.py's interleaved fresh processes; then each handler's first and second call in fresh processes
    against the emulator this process points at (clients created, connections opened, in the first)."""
    env = cold_import.stage_environment("dev")
    cases = {"baseline": "import boto3, chalice", "app": "import app"}
    for imports in cases.values() if runs > 1 else ():  # warm the disk cache (not worth it for one sample)
        cold_import.sample(imports, env)
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(runs):
        for name, imports in cases.items():
            times[name].append(cold_import.sample(imports, env))
    import_ms, baseline_ms = (statistics.median(times[name]) * 1000 for name in ("app", "baseline"))
    say(f"cold import: app {import_ms:.0f} ms, boto3+chalice {baseline_ms:.0f} ms ({runs} runs each)")
    first: dict[str, list[float]] = {c: [] for c in CONSUMERS}
    second: dict[str, list[float]] = {c: [] for c in CONSUMERS}
    for _ in range(invocations):
        for consumer in CONSUMERS:
            code = FIRST_INVOCATION.format(project=str(PROJECT_DIR), consumer=consumer, handler=HANDLERS[consumer])
            out = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_DIR, env=dict(os.environ), check=True,
                                 capture_output=True, text=True).stdout
            line = [text for text in out.splitlines() if text.startswith("BENCH ")][-1]
            one, two = json.loads(line[len("BENCH "):])
            first[consumer].append(one * 1000)
            second[consumer].append(two * 1000)
    figures = ColdFigures(import_ms, baseline_ms, runs, {c: statistics.median(v) for c, v in first.items()},
                          {c: statistics.median(v) for c, v in second.items()})
    say("first invocation: " + ", ".join(f"{c} {figures.first_ms[c]:.0f} ms (then {figures.second_ms[c]:.0f})"
                                         for c in CONSUMERS))
    return figures


# --- 4. the local stack --------------------------------------------------------------------------------------

@dataclass
class StackSnapshot:
    users_before: int
    queryable_ms: list[float]
    event_ms: list[float]
    users_per_second: float

    @staticmethod
    def percentile(samples: list[float], fraction: float) -> float:
        ordered = sorted(samples)
        return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


@dataclass
class StackFigures:
    users: int
    clients: int
    fresh: StackSnapshot
    loaded: StackSnapshot
    fill_users_per_second: float


def measure_stack(users: int, probes: int, clients: int, say: Callable[[str], None]) -> StackFigures:
    """A fresh `python -m local_stack` on free ports: probes, users/s, `users` more users, probes again."""
    from local_stack import loadgen

    stack = loadgen.StackProcess()
    try:
        stack.wait_ready()
        say(f"local stack: API {stack.api}, emulator {stack.emulator}")
        run = uuid.uuid4().hex[:8]
        written = 0
        probe_queue = loadgen.event_probe_queue(stack.emulator)

        def snapshot(sample: int) -> StackSnapshot:
            nonlocal written
            queryable = [s * 1000 for s in loadgen.probe_latency(stack.api, probes)]
            events = [s * 1000 for s in loadgen.probe_event_latency(stack.api, stack.emulator, probe_queue, probes)]
            rate = loadgen.post_users(stack.api, run, written, sample, clients)
            before = written
            written += sample
            return StackSnapshot(before, queryable, events, rate.per_second)

        time.sleep(5)  # pollers settle after start-up
        fresh = snapshot(min(1000, max(100, users // 10)))
        say(f"fresh: POST → queryable p50 {statistics.median(fresh.queryable_ms):.0f} ms, "
            f"POST → event p50 {statistics.median(fresh.event_ms):.0f} ms, {fresh.users_per_second:.0f} users/s")
        fill = loadgen.post_users(stack.api, run, written, max(0, users - written), clients)
        written += fill.users
        say(f"{written:,} users written ({fill.per_second:.0f} users/s); waiting for the consumers to catch up")
        posted = written + 2 * probes
        try:
            loadgen.wait_caught_up(stack.emulator, posted, timeout=900)
        except loadgen.LoadError as error:
            say(f"{error}; measuring anyway")
        time.sleep(5)
        loaded = snapshot(min(1000, max(100, users // 10)))
        say(f"after {loaded.users_before:,}: POST → queryable p50 {statistics.median(loaded.queryable_ms):.0f} ms, "
            f"POST → event p50 {statistics.median(loaded.event_ms):.0f} ms, {loaded.users_per_second:.0f} users/s")
        return StackFigures(users, clients, fresh, loaded, fill.per_second)
    finally:
        stack.stop()


# --- BENCHMARKS.md -------------------------------------------------------------------------------------------

def verdict(ok: bool) -> str:
    return "PASS" if ok else "**MISS**"


def machine() -> str:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor() or "?") if Path("/proc/cpuinfo").exists() \
        else platform.processor()
    load = os.getloadavg()
    return (f"{model}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()} "
            f"{platform.release()}; load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} at the start "
            f"(a machine shared with other engineers' test runs: absolute times are noisy, ratios of one run hold)")


def report(command: str, started: datetime, seconds: float, consumers: list[ConsumerFigures],
           cpu: list[CpuFigures], cold: ColdFigures | None, stack: StackFigures | None, machine_text: str,
           before_name: str | None = None) -> str:
    """BENCHMARKS.md's text."""
    lines = [
        "# Benchmarks",
        "",
        f"Generated by `{command}` on {started:%Y-%m-%d %H:%M} UTC in {seconds / 60:.1f} min. Do not edit: run it "
        "again (`make bench`; `make bench BENCH_ARGS=--quick` checks the harness in seconds).",
        "",
        f"Machine: {machine_text}.",
        "",
        "## Consumers: naive, floor and project side by side",
        "",
        "A moto server on loopback (the local stack's patched emulator, its own process) with the infrastructure "
        "template deployed; the event bus has no rule (AWS answers PutEvents without waiting for targets; moto "
        "delivers to them inside the call). *naive*: one PutItem/DeleteItem per write, one PutEvents per event. "
        "*floor*: the project's own requests, recorded, then sent raw with no logic. *project*: app.py's handler "
        "called as Lambda calls it, batches of 100 records in Lambda's shape (stream: 3 INSERTs to 1 MODIFY moving "
        "a user to another city; queue: valid messages). The columns take turns in rounds of 1,000 records, the "
        "order rotated each round, so a machine that slows down slows each alike; up to 1,000 records: median of "
        f"{max((len(f.columns['naive'].seconds) for f in consumers), default=0)} repeats; "
        "more: one run of all its rounds.",
        "",
        "| consumer | records | naive calls | naive s | floor calls | floor s | project calls | project s | "
        "project rec/s | project vs naive | project / floor | goal | |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for figure in consumers:
        c = figure.columns
        speedup = figure.ratio("project", "naive")
        over_floor = figure.ratio("floor", "project")
        checks, goals = [over_floor <= 1.3], ["≤ 1.3× floor"]
        if figure.consumer != "fanout":
            goals.insert(0, "≥ 5× naive" + (" (at 10,000)" if figure.records != 10_000 else ""))
            if figure.records == 10_000:
                checks.append(speedup >= 5)
        lines.append(
            f"| {figure.consumer} | {figure.records:,} | {c['naive'].calls[-1]:,} | {c['naive'].median:.2f} | "
            f"{c['floor'].calls[-1]:,} | {c['floor'].median:.2f} | {c['project'].calls[-1]:,} | "
            f"{c['project'].median:.2f} | {figure.rate('project'):,.0f} | {speedup:.1f}× | {over_floor:.2f}× | "
            f"{', '.join(goals)} | {verdict(all(checks))} |")
    lines += [
        "",
        "## Handler CPU per record, and memory",
        "",
        "The same handlers with stub clients (no I/O, no emulator): CPU time per record over "
        f"{cpu[0].records:,} records after one warm-up batch, median of {len(cpu[0].us_per_record)} fresh processes; "
        "peak memory traced by tracemalloc over one such run (the records themselves excluded)."
        + (f" *before*: the same processes on `{before_name}`, interleaved with these." if before_name else "")
        if cpu else "",
        "",
        "| consumer | µs/record | min | " + ("before µs/record | before / now | before peak MiB | " if before_name
                                           else "") + "peak MiB | goal | |",
        "|---|---:|---:|" + ("---:|---:|---:|" if before_name else "") + "---:|---|---|",
    ]
    for item in cpu:
        goal = item.consumer in ("replication", "fanout")
        was = (f"{statistics.median(item.before_us):.1f} | {statistics.median(item.before_us) / item.median:.2f}× | "
               f"{item.before_peak_mib:.1f} | " if item.before_us and item.before_peak_mib is not None else "")
        lines.append(f"| {item.consumer} | {item.median:.1f} | {min(item.us_per_record):.1f} | {was}"
                     f"{item.peak_mib:.1f} | {'≤ 40 µs' if goal else '—'} | "
                     f"{verdict(item.median <= 40) if goal else ''} |")
    if cold is not None:
        lines += [
            "",
            "## Cold start",
            "",
            f"`benchmarks/cold_import.py`'s method: fresh interpreters importing `app.py` with the dev stage's "
            f"variables vs `import boto3, chalice`, interleaved, median of {cold.runs}. No client is created at "
            "import (`tests/unit/test_clients.py`).",
            "",
            "| import | median ms | ratio | goal | |",
            "|---|---:|---:|---|---|",
            f"| `import boto3, chalice` | {cold.baseline_ms:.0f} | 1.00× | | |",
            f"| `import app` | {cold.import_ms:.0f} | {cold.ratio:.2f}× | ≤ 1.25× | {verdict(cold.ratio <= 1.25)} |",
            "",
            "First invocation of each handler in a fresh process after `import app` (clients created, first "
            "connection to the emulator, one record), and the second call for comparison; medians:",
            "",
            "| handler | first call ms | second call ms |",
            "|---|---:|---:|",
        ]
        lines += [f"| {HANDLERS[c]} | {cold.first_ms[c]:.0f} | {cold.second_ms[c]:.0f} |" for c in CONSUMERS]
    lines += ["", "## Local stack", ""]
    if stack is None:
        lines.append("Not measured in this run (`--quick` or `--users 0`).")
    else:
        f, s = stack.fresh, stack.loaded
        q50f, q50s = statistics.median(f.queryable_ms), statistics.median(s.queryable_ms)
        ratio = q50s / q50f
        lines += [
            "A fresh `python -m local_stack` on free ports. POST → queryable: POST /users, then "
            "GET /users?state=&city= polled until the user shows; POST → event: POST /users, then its event polled "
            f"in an SQS queue subscribed to the bus by a rule; {len(f.queryable_ms)} sequential samples each, fresh "
            f"and after {s.users_before:,} users were written through the API by {stack.clients} clients "
            f"({stack.fill_users_per_second:.0f} users/s while filling).",
            "",
            "| | fresh p50 | fresh p95 | after p50 | after p95 | after / fresh (p50) | goal | |",
            "|---|---:|---:|---:|---:|---:|---|---|",
            f"| POST → queryable | {q50f:.0f} ms | {f.percentile(f.queryable_ms, 0.95):.0f} ms | {q50s:.0f} ms | "
            f"{s.percentile(s.queryable_ms, 0.95):.0f} ms | {ratio:.2f}× | fresh p50 ≤ 150 ms, after ≤ 1.25× | "
            f"{verdict(q50f <= 150 and ratio <= 1.25)} |",
            f"| POST → event | {statistics.median(f.event_ms):.0f} ms | {f.percentile(f.event_ms, 0.95):.0f} ms | "
            f"{statistics.median(s.event_ms):.0f} ms | {s.percentile(s.event_ms, 0.95):.0f} ms | "
            f"{statistics.median(s.event_ms) / statistics.median(f.event_ms):.2f}× | — | |",
            f"| API users/s, {stack.clients} clients | {f.users_per_second:.0f} | | {s.users_per_second:.0f} | | "
            f"{f.users_per_second / s.users_per_second:.2f}× (fresh rate / after rate) | — | |",
        ]
    lines += ["", "## Reproduce", "", "```", command, "```", ""]
    return "\n".join(line for line in lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, no local stack: checks the harness")
    parser.add_argument("--sizes", default="1000,10000", help="records per consumer run (default %(default)s)")
    parser.add_argument("--repeats", type=int, default=3, help="repeats of each column (default %(default)s)")
    parser.add_argument("--cpu-records", type=int, default=10_000, help="records of the CPU runs")
    parser.add_argument("--cold-runs", type=int, default=10, help="fresh processes per import case")
    parser.add_argument("--users", type=int, default=10_000, help="users written to the local stack (0: skip)")
    parser.add_argument("--probes", type=int, default=200, help="latency samples of each kind, each time")
    parser.add_argument("--clients", type=int, default=4, help="concurrent API clients")
    parser.add_argument("--before", help="a git ref or a checkout whose handlers' CPU is measured alongside")
    parser.add_argument("--parts", default="cpu,consumers,cold,stack", help="which parts to run (default: all)")
    parser.add_argument("--out", type=Path, default=PROJECT_DIR / "BENCHMARKS.md", help="where the report goes")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.quick:
        args.sizes, args.repeats, args.cpu_records, args.cold_runs, args.users = "100", 1, 200, 1, 0

    def say(text: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} {text}", file=sys.stderr, flush=True)

    command = "make bench" + (f" BENCH_ARGS='{' '.join(argv if argv is not None else sys.argv[1:])}'"
                              if (argv if argv is not None else sys.argv[1:]) else "")
    started, clock = datetime.now(UTC), time.monotonic()
    machine_text = machine()
    parts = set(args.parts.split(","))
    saved_env = dict(os.environ)
    os.environ.update(cold_import.stage_environment("dev"))  # as `chalice deploy` does before importing app.py
    cpu: list[CpuFigures] = []
    consumers: list[ConsumerFigures] = []
    cold = stack = None
    try:
        if "cpu" in parts:
            say("handler CPU with stub clients …")
            with tempfile.TemporaryDirectory(prefix="bench-before-") as scratch:
                before = checkout(args.before, Path(scratch)) if args.before else None
                cpu = measure_cpu(args.cpu_records, 1 if args.quick else 5, before, say)
        if parts & {"consumers", "cold"}:
            emulator = Emulator()
            try:
                variables = deploy(emulator.endpoint)
                say(f"emulator {emulator.endpoint}: stack deployed, bus without rules")
                if "consumers" in parts:
                    say("consumers against the emulator …")
                    consumers = measure_consumers(variables, [int(size) for size in args.sizes.split(",")],
                                                  args.repeats, say)
                if "cold" in parts:
                    say("cold start …")
                    cold = measure_cold(args.cold_runs, 1 if args.quick else 5, say)
            finally:
                emulator.stop()
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
    if "stack" in parts and args.users > 0:
        say("local stack …")
        stack = measure_stack(args.users, args.probes, args.clients, say)
    text = report(command, started, time.monotonic() - clock, consumers, cpu, cold, stack, machine_text, args.before)
    args.out.write_text(text)
    say(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
