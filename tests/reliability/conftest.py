"""The reliability suite: hypothesis profiles by `RELIABILITY_PROFILE` (`test`: bounded, in `make test`;
`soak`: `make soak`), and the table of what the run measured, printed at its end."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from chalicelib.backoff import Backoff
from local_stack import moto_patches
from ops.__main__ import main as ops_main
from tests.reliability import figures
from tests.support.resources import StageResources

_COMMON = {"deadline": None, "derandomize": False, "print_blob": True,
           "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                     HealthCheck.data_too_large, HealthCheck.large_base_example]}
settings.register_profile(f"reliability-{figures.PROFILE}", max_examples=figures.CASES_PER_ROUTE, **_COMMON)
settings.register_profile(f"reliability-{figures.PROFILE}-consumers", max_examples=figures.CASES_PER_CONSUMER,
                          **_COMMON)
RELIABILITY = settings.get_profile(f"reliability-{figures.PROFILE}")
RELIABILITY_CONSUMERS = settings.get_profile(f"reliability-{figures.PROFILE}-consumers")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    table = figures.markdown()
    if not table:
        return
    terminalreporter.section(f"reliability ({figures.PROFILE} profile)")
    terminalreporter.write_line(table)
    report = os.environ.get("RELIABILITY_REPORT")
    if report:
        Path(report).parent.mkdir(parents=True, exist_ok=True)
        Path(report).write_text(table)


@pytest.fixture(autouse=True)
def moto_as_the_local_stack_runs_it() -> Iterator[None]:
    """The local stack's moto patch layer: moto as AWS behaves at depth (a receive or send is not O(queue depth))."""
    moto_patches.apply()
    yield
    moto_patches.release()


@pytest.fixture
def no_backoff_sleep(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Backoff delays are recorded, not slept (the run's retries happen at once)."""
    waited: list[float] = []
    monkeypatch.setattr(Backoff, "wait", lambda self, retry: waited.append(self.delay(retry)))
    return waited


@pytest.fixture
def run_ops(aws: StageResources, tmp_path: Path) -> Callable[..., int]:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"version": "2.0", "app_name": "stream-pipeline",
                                  "stages": {"test": {"environment_variables": aws.env()}}}))

    def run(verb: str, *options: str) -> int:
        argv = [verb, "--stage", "test", "--config", str(config), *options]
        if verb == "redrive":
            argv += ["--wait-seconds", "0"]
        if verb == "verify":
            argv += ["--checkpoint", str(tmp_path / "verify.json"), "--no-progress"]
        return ops_main(argv)

    return run
