"""Bring the whole system up on one machine: emulator, stage resources, environment, API, pollers."""

from __future__ import annotations

import importlib
import logging
import os
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Protocol

import boto3

from chalicelib.config import API_AUTH_IAM, api_auth
from local_stack import function_output
from local_stack.api import ApiServer
from local_stack.delivery import RetryPolicy
from local_stack.emulator import Emulator, point_process_at
from local_stack.invocation import DEFAULT_MEMORY_MB, FAIL_ONCE_VARIABLE, FaultHook, Invoker
from local_stack.queue_poller import BusPoller, QueuePoller
from local_stack.sources import BusSource, QueueSource, StreamSource, discover, resolve_handler
from local_stack.stream_poller import StreamPoller
from tooling.infrastructure import deploy_stack, stage_environment
from tooling.merge_template import load_mapping_settings, template_variables
from tooling.stage import PROJECT_DIR, load_config, stage_variables

logger = logging.getLogger("local_stack")

REGION = "us-east-1"
DEFAULT_TIMEOUT_S = 60  # Chalice's default lambda_timeout


class Poller(Protocol):
    """What a poller thread drives."""

    calls: int

    def poll_once(self) -> bool: ...


@dataclass(frozen=True)
class Options:
    """How to run the stack (`python -m local_stack --help`)."""

    host: str = "127.0.0.1"
    emulator_port: int = 4566
    api_port: int = 8000
    stage: str = "dev"
    poll_interval: float = 0.05
    idle_poll_interval: float = 0.25
    shard_refresh: float = 1.0
    max_retry_attempts: int = 10


class PollerThread(threading.Thread):
    """Runs a poller until `stop`: at once again after a delivery, after `interval` when recently busy,
    after `idle_interval` once nothing was delivered for `QUIET_SECONDS` (Lambda polls a stream shard 4 times a
    second). A lone write waits half the busy interval on average; it costs CPU only in the seconds after a delivery."""

    QUIET_SECONDS = 5.0

    def __init__(self, name: str, poller: Poller, stop: threading.Event, interval: float,
                 idle_interval: float | None = None):
        super().__init__(name=f"poller-{name}", daemon=True)
        self.poller = poller
        self._stop_event = stop
        self._interval = interval
        self._idle_interval = max(interval, idle_interval if idle_interval is not None else interval)

    def run(self) -> None:
        failures = 0
        delivered_at = time.monotonic()
        while not self._stop_event.is_set():
            try:
                busy = self.poller.poll_once()
                failures = 0
            except Exception:  # the emulator being unreachable must not kill the poller for good
                failures += 1
                if failures in (1, 10) or failures % 100 == 0:
                    logger.exception("%s: polling failed (%d in a row); retrying", self.name, failures)
                busy = False
                self._stop_event.wait(min(2.0, 0.2 * failures))
            now = time.monotonic()
            if busy:
                delivered_at = now
            else:
                quiet = now - delivered_at >= self.QUIET_SECONDS
                self._stop_event.wait(self._idle_interval if quiet else self._interval)


class LocalStack:
    """The running system. `start()` then `stop()`; each releases what it took."""

    def __init__(self, options: Options):
        self.options = options
        self.emulator = Emulator(options.host, options.emulator_port)
        self.api: ApiServer | None = None
        self.pollers: dict[str, Poller] = {}
        self.environment: dict[str, str] = {}
        self._stop = threading.Event()
        self._threads: list[PollerThread] = []
        self._metrics: function_output.MetricsForwarder | None = None

    def start(self) -> None:
        """Emulator → resources from the template → environment → app → pollers → API."""
        self.emulator.start()
        point_process_at(self.emulator.endpoint)
        logger.info("deploying infra/template.yaml as stage %s", self.options.stage)
        outputs = deploy_stack(boto3.client("cloudformation"), self.options.stage, poll=0.1)
        self.environment = self._stage_environment(outputs)
        os.environ.update(self.environment)  # before `import app`: decorators read USERS_STREAM_ARN etc.
        function_output.install()  # each function's stdout read back: its JSON logs rendered, its EMF forwarded
        logger.info("stage %s environment (stack outputs over .chalice/config.json; stream ARNs are new each "
                    "start): %s", self.options.stage, ", ".join(
                        f"{name}={value}" for name, value in sorted(self.environment.items()) if name.endswith("_ARN")
                        or name.endswith("_URL")))
        app = self._import_app()
        # Bind the API port before any poller runs, so a busy port fails the start cleanly.
        self.api = ApiServer(app, self._chalice_config(), self.options.host, self.options.api_port)
        self._start_pollers(app)
        self.api.start()
        self._log_api_protection()

    def stop(self) -> None:
        """Pollers first (no delivery is cut in half), then the API, then the emulator."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)
        if self._metrics is not None:
            self._metrics.stop()  # what the last deliveries emitted reaches CloudWatch before it goes
        if self.api is not None:
            self.api.stop()  # also closes a socket bound by a start that failed later
        self.emulator.stop()
        function_output.uninstall()
        logger.info("stopped")

    def _log_api_protection(self) -> None:
        # What API Gateway does on a deployed stage and this server does not, said once at start.
        throttling = ("not throttled here (a deployed stage answers 429 beyond its rate and burst limits: "
                      "infra/merge-template.yaml, Mappings.ApiThrottling)")
        if api_auth(self.environment) == API_AUTH_IAM:
            logger.warning("API of stage %s: API_AUTH=iam, but SigV4 is not checked here (chalice local admits "
                           "unsigned requests; API Gateway checks them) and %s", self.options.stage, throttling)
        else:
            logger.info("API of stage %s: open (API_AUTH=none), %s", self.options.stage, throttling)

    def _stage_environment(self, outputs: dict[str, str]) -> dict[str, str]:
        variables = stage_variables(self.options.stage)  # API_AUTH and anything else the stage sets
        variables.update(stage_environment(outputs))
        sqs = boto3.client("sqs")
        for name, value in list(variables.items()):
            # CloudFormation in the emulator names queues by AWS's host; the emulator's own URL is clearer.
            if name.endswith("_URL") and "/" in value and ".amazonaws.com/" in value:
                variables[name] = sqs.get_queue_url(QueueName=value.rsplit("/", 1)[-1])["QueueUrl"]
        return variables

    def _import_app(self) -> Any:
        if str(PROJECT_DIR) not in sys.path:
            sys.path.insert(0, str(PROJECT_DIR))
        return importlib.import_module("app").app

    def _chalice_config(self, function_name: str = "api_handler") -> Any:
        from chalice.config import Config

        config = Config(chalice_stage=self.options.stage, user_provided_params={"project_dir": str(PROJECT_DIR)},
                        config_from_disk=load_config())
        return config.scope(self.options.stage, function_name)

    def _start_pollers(self, app: Any) -> None:
        discovery = discover(app.event_sources)
        for unsupported in discovery.unsupported:
            logger.warning("not run locally: %s", unsupported)
        variables = template_variables(self.options.stage, REGION)
        faults = FaultHook.from_names(os.environ.get(FAIL_ONCE_VARIABLE, ""))
        if faults.pending:
            logger.warning("%s: first delivery to %s will fail", FAIL_ONCE_VARIABLE, ", ".join(sorted(faults.pending)))
        retry = RetryPolicy(max_retry_attempts=self.options.max_retry_attempts)
        metrics = function_output.MetricsForwarder(boto3.client("cloudwatch"))
        metrics.start()
        self._metrics = metrics
        for source in discovery.sources:
            settings = load_mapping_settings(source.name, variables)
            function = self._chalice_config(source.name)  # timeout and memory as `chalice deploy` sets them
            invoker = Invoker(source.name, resolve_handler(source.handler_string), settings.report_failures, faults,
                              timeout_ms=int(function.lambda_timeout or DEFAULT_TIMEOUT_S) * 1000,
                              function_name=f"{function.app_name}-{self.options.stage}-{source.name}",
                              memory_mb=int(function.lambda_memory_size or DEFAULT_MEMORY_MB), metrics=metrics)
            poller: Poller
            if isinstance(source, StreamSource):
                poller = StreamPoller(source, invoker, boto3.client("dynamodbstreams"), retry, settings,
                                      boto3.client("sqs"), self.options.shard_refresh, REGION)
                what = (f"stream {source.stream_arn.split('/')[1]} ({source.starting_position}, "
                        f"batch {source.batch_size}, window {source.batching_window:g}s, retries "
                        f"{_retries(settings.max_retry_attempts, retry)}, "
                        f"bisect {'on' if settings.bisect_on_error else 'off'}, "
                        f"on failure → {(settings.on_failure_arn or 'log only').rsplit(':', 1)[-1]})")
            elif isinstance(source, QueueSource):
                poller = QueuePoller(source, invoker, boto3.client("sqs"), REGION)
                what = f"queue {source.queue_name} (batch {source.batch_size}, window {source.batching_window:g}s)"
            else:
                assert isinstance(source, BusSource)
                bus = BusPoller(source, invoker, boto3.client("sqs"), boto3.client("events"), self.options.stage,
                                REGION)
                bus.setup()
                poller = bus
                what = f"default bus, pattern {source.event_pattern}"
            logger.info("handler %s ← %s; batchItemFailures %s", source.name, what,
                        "honoured" if settings.report_failures else "ignored (ReportBatchItemFailures off)")
            self.pollers[source.name] = poller
            thread = PollerThread(source.name, poller, self._stop, self.options.poll_interval,
                                  self.options.idle_poll_interval)
            self._threads.append(thread)
            thread.start()


def _retries(configured: int | None, default: RetryPolicy) -> str:
    attempts = default.max_retry_attempts if configured is None else configured
    return "forever" if attempts < 0 else str(attempts)
