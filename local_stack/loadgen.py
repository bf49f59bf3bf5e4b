"""Load and latency driver for the local stack: how it behaves as its tables and queues fill.

`python -m local_stack.loadgen soak` starts a fresh `python -m local_stack` on free ports (or drives a running
one: `--api URL --emulator URL --pid PID`) and measures, fresh and again after `--users` users were written
through the API by `--clients` concurrent clients:

- POST → queryable: a user with a city of its own is POSTed, then `GET /users?state=&city=` is polled until
  replication shows it (median and p90 of `--probes` sequential samples); `probe_event_latency` times POST → event
  in a subscriber queue the same way (`make bench` reports both);
- users/s: `--sample-users` users POSTed by `--clients` clients, each on its own keep-alive connection;
- idle CPU: the stack process's CPU time (user + system, all threads, from /proc) per wall second while
  nothing is sent, once every poller has caught up (fraction of one core).

It prints a table and, with `--json PATH`, writes the figures for BENCHMARKS.md. The building blocks
(`StackProcess`, `post_users`, `probe_latency`, `cpu_fraction`, `wait_caught_up`) are for other drivers.
Only loopback addresses are ever sent to; every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import boto3

PROJECT_DIR = Path(__file__).resolve().parents[1]
READY = re.compile(r"local stack ready: API (http://\S+), emulator (http://\S+),")
STATES = tuple(f"S{n:02d}" for n in range(50))  # users spread over 50 partitions of the target table
PROBE_STATE = STATES[7]


class LoadError(RuntimeError):
    """The stack did not answer as expected (a non-2xx answer, a flow that never arrived, a dead process)."""


# --- the stack under test ---------------------------------------------------------------------------


class StackProcess:
    """`python -m local_stack` in its own process group (the whole stack is signalled, nothing leaks), free ports
    by default; `stop()` is Ctrl-C, then SIGKILL. What it prints is kept in `lines` (or written to `log_path`).
    `command` runs something else that starts one (`make run`) in its place."""

    def __init__(self, emulator_port: int = 0, api_port: int = 0, extra_args: tuple[str, ...] = (),
                 env: dict[str, str] | None = None, log_path: Path | None = None,
                 command: list[str] | None = None):
        environment = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        environment.update(env or {})
        environment["PYTHONUNBUFFERED"] = "1"
        self.api = ""
        self.emulator = ""
        self.lines: list[str] = []
        self.returncode: int | None = None
        self._log = log_path.open("w") if log_path else None
        self._ready = threading.Event()
        self.process = subprocess.Popen(
            command or [sys.executable, "-m", "local_stack", "--emulator-port", str(emulator_port),
                        "--api-port", str(api_port), *extra_args],
            cwd=PROJECT_DIR, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            start_new_session=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        """The stack's process id (emulator, API and pollers all live in it)."""
        return self.process.pid

    @property
    def running(self) -> bool:
        """True until the process has exited."""
        return self.process.poll() is None

    def output(self) -> str:
        """Everything it printed so far."""
        return "\n".join(self.lines)

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if self._log is not None:
                self._log.write(line)
            else:
                self.lines.append(line.rstrip("\n"))
            found = READY.search(line)
            if found:
                self.api, self.emulator = found.group(1), found.group(2)
                self._ready.set()

    def wait_ready(self, timeout: float = 120.0) -> None:  # generous: a slow, shared CI machine
        """Until the stack logs that it is ready; LoadError if it exits or takes longer than `timeout`."""
        deadline = time.monotonic() + timeout
        while not self._ready.wait(0.2):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise LoadError("local stack did not start:\n" + self.output())

    def stop(self, timeout: float = 20.0) -> int:
        """SIGINT to the process group (Ctrl-C), SIGKILL if it has not exited in `timeout`; the exit code."""
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGINT)
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout)
            except ProcessLookupError:
                pass
        self._reader.join(5)
        if self._log is not None:
            self._log.close()
        self.returncode = self.process.returncode
        return self.process.returncode


def emulator_client(emulator: str, service: str) -> Any:
    """A boto3 client for the emulator, with its region and dummy credentials."""
    return boto3.client(service, endpoint_url=emulator, region_name="us-east-1", aws_access_key_id="local",
                        aws_secret_access_key="local")


# --- HTTP ---------------------------------------------------------------------------------------------


class ApiClient:
    """One keep-alive HTTP connection to the API, as one client would hold it."""

    def __init__(self, api: str, timeout: float = 30.0):
        parts = urlsplit(api)
        if not (parts.hostname in ("localhost", "::1") or (parts.hostname or "").startswith("127.")):
            raise ValueError(f"refusing to load {api}: only loopback addresses are driven")
        self._host, self._port, self._timeout = parts.hostname or "127.0.0.1", parts.port or 80, timeout
        self._connection: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """`(status, parsed JSON body or None)`; reconnects once if the server closed the connection."""
        payload = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if payload is not None else {}
        for attempt in (1, 2):
            if self._connection is None:
                self._connection = http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)
            try:
                self._connection.request(method, path, body=payload, headers=headers)
                response = self._connection.getresponse()
                text = response.read().decode()
            except (ConnectionError, http.client.HTTPException):
                self.close()
                if attempt == 2:
                    raise
                continue
            if response.getheader("Connection", "").lower() == "close":
                self.close()
            return response.status, json.loads(text) if text else None
        raise AssertionError("unreachable")

    def close(self) -> None:
        """Drop the connection."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def user_body(run: str, index: int) -> dict[str, Any]:
    """The `index`-th load user of `run`: spread over 50 states and 20 cities each."""
    return {"email": f"load-{run}-{index}@example.com", "state": STATES[index % len(STATES)],
            "city": f"City {index % 20}", "zipcode": f"{index % 100000:05d}"}


# --- measurements --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Throughput:
    """`users` created by `clients` clients in `seconds`."""

    users: int
    clients: int
    seconds: float

    @property
    def per_second(self) -> float:
        """Users created per wall-clock second."""
        return self.users / self.seconds if self.seconds else 0.0


def post_users(api: str, run: str, start: int, count: int, clients: int = 4) -> Throughput:
    """POST users `start`..`start+count-1` of `run` with `clients` concurrent clients; each must answer 201."""
    indexes = iter(range(start, start + count))
    lock = threading.Lock()

    def client_loop() -> int:
        client = ApiClient(api)
        created = 0
        try:
            while True:
                with lock:
                    index = next(indexes, None)
                if index is None:
                    return created
                status, body = client.request("POST", "/users", user_body(run, index))
                if status != 201:
                    raise LoadError(f"POST /users answered {status}: {body}")
                created += 1
        finally:
            client.close()

    started = time.monotonic()
    with ThreadPoolExecutor(clients) as pool:
        created = sum(pool.map(lambda _: client_loop(), range(clients)))
    return Throughput(created, clients, time.monotonic() - started)


def post_until(client: ApiClient, body: dict[str, Any], arrived: Callable[[], bool], missing: str, timeout: float,
               interval: float) -> float:
    """POST `body` as a user, then seconds until `arrived()` (polled every `interval`); LoadError past `timeout`."""
    started = time.monotonic()
    status, answer = client.request("POST", "/users", body)
    if status != 201:
        raise LoadError(f"POST /users answered {status}: {answer}")
    while not arrived():
        if time.monotonic() - started > timeout:
            raise LoadError(f"{missing} within {timeout:g} s")
        time.sleep(interval)
    return time.monotonic() - started


def probe_latency(api: str, samples: int = 30, timeout: float = 15.0, interval: float = 0.01) -> list[float]:
    """Seconds from sending a POST to the first `GET /users?state=&city=` that shows the user, per sample."""
    client = ApiClient(api)
    latencies = []
    try:
        for _ in range(samples):
            city = f"Probe {uuid.uuid4().hex[:12]}"
            body = {"email": f"probe-{uuid.uuid4().hex}@example.com", "state": PROBE_STATE, "city": city,
                    "zipcode": "10001"}
            path = f"/users?state={PROBE_STATE}&city={quote(city)}&limit=1"

            def queryable(path: str = path) -> bool:
                status, answer = client.request("GET", path)
                return status == 200 and bool(answer["items"])

            latencies.append(post_until(client, body, queryable, f"user in {city!r} not queryable", timeout, interval))
    finally:
        client.close()
    return latencies


EVENT_PROBE_PREFIX = "probe-event-"


def event_probe_queue(emulator: str, stage: str = "dev") -> str:
    """An SQS queue subscribed to the stage's bus by a rule of its own that matches only `probe_event_latency`'s
    users (the example subscriber queue holds every event, so one user's cannot be found there); its URL."""
    sqs, events = emulator_client(emulator, "sqs"), emulator_client(emulator, "events")
    name, bus = f"stream-pipeline-{stage}-event-probe", stack_outputs(emulator, stage)["EventBusName"]
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name=name, EventBusName=bus, State="ENABLED", EventPattern=json.dumps(
        {"detail-type": ["INSERT"], "detail": {"keys": {"email": [{"prefix": EVENT_PROBE_PREFIX}]}}}))
    events.put_targets(Rule=name, EventBusName=bus, Targets=[{"Id": "probe", "Arn": arn}])
    return url


def probe_event_latency(api: str, emulator: str, queue_url: str, samples: int = 30, timeout: float = 15.0,
                        interval: float = 0.01) -> list[float]:
    """Seconds from sending a POST to its INSERT event arriving in `queue_url` (see `event_probe_queue`), per
    sample, one user at a time."""
    client, sqs = ApiClient(api), emulator_client(emulator, "sqs")
    latencies = []
    try:
        for _ in range(samples):
            email = f"{EVENT_PROBE_PREFIX}{uuid.uuid4().hex}@example.com"
            body = {"email": email, "state": PROBE_STATE, "city": "Probe", "zipcode": "10001"}

            def published(email: str = email) -> bool:
                messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
                for message in messages:
                    sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
                return any(json.loads(m["Body"])["detail"]["keys"].get("email") == email for m in messages)

            latencies.append(post_until(client, body, published, f"event of {email} not in the probe queue", timeout,
                                        interval))
    finally:
        client.close()
    return latencies


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system, every thread) the process has used so far, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def cpu_fraction(pid: int, seconds: float, sleep: Callable[[float], None] = time.sleep) -> float:
    """Share of one core the process used over the next `seconds`."""
    started, used = time.monotonic(), cpu_seconds(pid)
    sleep(seconds)
    return (cpu_seconds(pid) - used) / (time.monotonic() - started)


def queue_depth(sqs: Any, url: str) -> int:
    """Messages in a queue: visible, in flight and delayed."""
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[
        "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
        "ApproximateNumberOfMessagesDelayed"])["Attributes"]
    return sum(int(value) for value in attributes.values())


def wait_caught_up(emulator: str, events: int, timeout: float = 600.0) -> float:
    """Until the example subscriber queue holds `events` fan-out events (every change replicated and
    published); the seconds it took. LoadError after `timeout`."""
    sqs, url = emulator_client(emulator, "sqs"), subscriber_queue_url(emulator)
    started = time.monotonic()
    while (depth := queue_depth(sqs, url)) < events:
        if time.monotonic() - started > timeout:
            raise LoadError(f"subscriber queue holds {depth} of {events} events after {timeout:g} s")
        time.sleep(1.0)
    return time.monotonic() - started


def stack_outputs(emulator: str, stage: str = "dev") -> dict[str, str]:
    """The local stack's CloudFormation outputs (its tables, queues and bus)."""
    stack = emulator_client(emulator, "cloudformation").describe_stacks(StackName=f"stream-pipeline-{stage}")
    return {o["OutputKey"]: o["OutputValue"] for o in stack["Stacks"][0]["Outputs"]}


def subscriber_queue_url(emulator: str) -> str:
    """The example subscriber queue (every fan-out event lands there; nobody drains it)."""
    sqs = emulator_client(emulator, "sqs")
    return sqs.get_queue_url(QueueName=stack_outputs(emulator)["SubscriberQueueUrl"].rsplit("/", 1)[-1])["QueueUrl"]


def prefill(emulator: str, users: int, run: str, workers: int = 4) -> None:
    """What `users` users written through the API leave behind where it grows, written straight into the emulator
    in batches (seconds instead of minutes): their items in the target table and one fan-out event each in the
    example subscriber queue. The users table and its stream are left alone (the pollers would replay them)."""
    table = stack_outputs(emulator)["UsersByLocationTable"]
    dynamodb, sqs = emulator_client(emulator, "dynamodb"), emulator_client(emulator, "sqs")
    queue = subscriber_queue_url(emulator)

    def items(start: int) -> None:
        requests = []
        for index in range(start, min(users, start + 25)):
            user = user_body(run, index)
            requests.append({"PutRequest": {"Item": {
                "state": {"S": user["state"]}, "city": {"S": user["city"]}, "email": {"S": user["email"]},
                "active": {"BOOL": True}, "city_email": {"S": f"{user['city']}#{user['email']}"}}}})
        pending: dict[str, Any] = {table: requests}
        while pending:
            pending = dynamodb.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}

    def events(start: int) -> None:
        entries = [{"Id": str(index - start), "MessageBody": json.dumps(fanout_event(user_body(run, index)))}
                   for index in range(start, min(users, start + 10))]
        if failed := sqs.send_message_batch(QueueUrl=queue, Entries=entries).get("Failed"):
            raise LoadError(f"prefill: SendMessageBatch failed: {failed}")

    with ThreadPoolExecutor(workers) as pool:  # boto3 clients are thread-safe
        list(pool.map(items, range(0, users, 25)))
        list(pool.map(events, range(0, users, 10)))


def fanout_event(user: dict[str, Any]) -> dict[str, Any]:
    """An INSERT event as the example subscriber receives it for `user` (the shape, not a published one)."""
    return {"version": "0", "id": str(uuid.uuid4()), "detail-type": "INSERT", "source": "stream-pipeline.users",
            "time": "2026-01-01T00:00:00Z", "region": "us-east-1", "resources": [], "detail": {
                "eventID": uuid.uuid4().hex, "eventName": "INSERT", "table": "stream-pipeline-dev-users",
                "keys": {"email": user["email"]}, "newImage": {**user, "active": True}, "oldImage": None,
                "changedAttributes": [], "truncated": False}}


# --- the soak --------------------------------------------------------------------------------------------


@dataclass
class Snapshot:
    """The three figures at one data volume."""

    users_before: int
    latency_p50_ms: float
    latency_p90_ms: float
    users_per_second: float
    idle_cpu: float


@dataclass
class SoakReport:
    """Fresh vs. after `users` users, with the ratios the issue bounds."""

    users: int
    clients: int
    fresh: Snapshot | None = None
    loaded: Snapshot | None = None
    fill: list[Throughput] = field(default_factory=list)
    caught_up_seconds: float | None = None  # after the last write, until fan-out had published every change

    def ratios(self) -> dict[str, float]:
        """after / fresh for latency, fresh / after for throughput (> 1 means worse)."""
        assert self.fresh is not None and self.loaded is not None
        return {"latency_p50": self.loaded.latency_p50_ms / self.fresh.latency_p50_ms,
                "throughput": self.fresh.users_per_second / self.loaded.users_per_second}

    def as_json(self) -> dict[str, Any]:
        """Everything, for BENCHMARKS.md."""
        return {"users": self.users, "clients": self.clients,
                "fresh": asdict(self.fresh) if self.fresh else None,
                "loaded": asdict(self.loaded) if self.loaded else None,
                "fill_users_per_second": [round(t.per_second, 1) for t in self.fill],
                "caught_up_seconds": self.caught_up_seconds,
                "ratios": self.ratios() if self.fresh and self.loaded else None}

    def table(self) -> str:
        """A plain-text table of the figures."""
        rows = [("", "fresh", f"after {self.users:,} users", "ratio")]
        if self.fresh and self.loaded:
            ratios = self.ratios()
            rows += [
                ("POST → queryable p50", f"{self.fresh.latency_p50_ms:.0f} ms", f"{self.loaded.latency_p50_ms:.0f} ms",
                 f"{ratios['latency_p50']:.2f}×"),
                ("POST → queryable p90", f"{self.fresh.latency_p90_ms:.0f} ms", f"{self.loaded.latency_p90_ms:.0f} ms",
                 ""),
                (f"users/s, {self.clients} clients", f"{self.fresh.users_per_second:.1f}",
                 f"{self.loaded.users_per_second:.1f}", f"{ratios['throughput']:.2f}×"),
                ("idle CPU (of one core)", f"{self.fresh.idle_cpu:.1%}", f"{self.loaded.idle_cpu:.1%}", ""),
            ]
        rows.append(("fan-out caught up", "", "not within --catch-up-timeout" if self.caught_up_seconds is None
                     else f"{self.caught_up_seconds:.1f} s after the last write", ""))
        widths = [max(len(row[i]) for row in rows) for i in range(4)]
        return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
                         for row in rows)


def snapshot(api: str, pid: int, run: str, start: int, users_before: int, args: argparse.Namespace,
             say: Callable[[str], None]) -> tuple[Snapshot, Throughput]:
    """Idle CPU, then latency probes, then a throughput sample (which writes `args.sample_users` users)."""
    say(f"idle CPU over {args.idle_seconds:g} s …")
    idle = cpu_fraction(pid, args.idle_seconds)
    say(f"{args.probes} POST → queryable probes …")
    latencies = sorted(probe_latency(api, args.probes))
    say(f"{args.sample_users} users with {args.clients} clients …")
    sample = post_users(api, run, start, args.sample_users, args.clients)
    p90 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.9))]
    return Snapshot(users_before, statistics.median(latencies) * 1000, p90 * 1000, sample.per_second, idle), sample


def soak(api: str, emulator: str, pid: int, args: argparse.Namespace,
         say: Callable[[str], None] = print) -> SoakReport:
    """Fresh figures, fill to `args.users` users, settle, figures again."""
    run = uuid.uuid4().hex[:8]
    report = SoakReport(args.users, args.clients)
    written = 0
    events = queue_depth(emulator_client(emulator, "sqs"), subscriber_queue_url(emulator))  # a running stack's
    time.sleep(args.settle)  # pollers back at their idle rate after start-up
    report.fresh, sample = snapshot(api, pid, run, written, written, args, say)
    written += sample.users
    events += sample.users + args.probes
    report.fill.append(sample)
    while written < args.users:
        count = min(args.chunk, args.users - written)
        chunk = post_users(api, run, written, count, args.clients)
        written += count
        events += count
        report.fill.append(chunk)
        say(f"{written:,} users written ({chunk.per_second:.1f} users/s)")
    say(f"waiting until the subscriber queue holds all {events:,} events …")
    try:
        report.caught_up_seconds = wait_caught_up(emulator, events, args.catch_up_timeout)
        say(f"caught up {report.caught_up_seconds:.1f} s after the last write")
    except LoadError as error:  # measured anyway: that is the stack a developer then has
        say(f"{error}; measuring anyway")
    time.sleep(args.settle)
    report.loaded, sample = snapshot(api, pid, run, written, written, args, say)
    return report


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m local_stack.loadgen", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("soak", help="fresh vs. loaded: latency, throughput, idle CPU")
    run.add_argument("--users", type=int, default=10_000, help="users to write before the second measurement "
                                                               "(default %(default)s)")
    run.add_argument("--clients", type=int, default=4, help="concurrent API clients (default %(default)s)")
    run.add_argument("--probes", type=int, default=30, help="POST → queryable samples each time (default %(default)s)")
    run.add_argument("--sample-users", type=int, default=1000,
                     help="users POSTed to measure users/s each time (default %(default)s)")
    run.add_argument("--chunk", type=int, default=1000, help="users per progress line while filling")
    run.add_argument("--idle-seconds", type=float, default=20.0, help="idle CPU measured over (default %(default)s)")
    run.add_argument("--settle", type=float, default=8.0,
                     help="seconds to wait before measuring idle CPU, so pollers are at their idle rate")
    run.add_argument("--catch-up-timeout", type=float, default=600.0,
                     help="seconds to wait for fan-out to publish every change before measuring anyway")
    run.add_argument("--api", help="drive a running stack's API instead of starting one (needs --emulator, --pid)")
    run.add_argument("--emulator", help="the running stack's emulator URL")
    run.add_argument("--pid", type=int, help="the running stack's process id (for its CPU time)")
    run.add_argument("--stack-log", type=Path, help="when starting a stack: write its log here")
    run.add_argument("--json", type=Path, help="also write the figures as JSON here")
    return parser


@dataclass(frozen=True)
class Target:
    """A running stack: its API and emulator URLs and its process id."""

    api: str
    emulator: str
    pid: int


@contextmanager
def target_of(args: argparse.Namespace) -> Iterator[Target]:
    """The stack named by --api/--emulator/--pid, or a fresh one started (and stopped) here."""
    if args.api:
        if not (args.emulator and args.pid):
            raise SystemExit("--api needs --emulator and --pid")
        yield Target(args.api, args.emulator, args.pid)
        return
    stack = StackProcess(log_path=args.stack_log)
    try:
        stack.wait_ready()
        yield Target(stack.api, stack.emulator, stack.pid)
    finally:
        stack.stop()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def say(text: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} {text}", file=sys.stderr, flush=True)

    with target_of(args) as target:
        say(f"stack: API {target.api}, emulator {target.emulator}, pid {target.pid}")
        report = soak(target.api, target.emulator, target.pid, args, say)
        print(report.table())
        if args.json:
            args.json.write_text(json.dumps(report.as_json(), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
