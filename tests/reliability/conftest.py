"""The reliability suite: hypothesis profiles by `RELIABILITY_PROFILE` (`test`: bounded, in `make test`;
`soak`: `make soak`), and the table of what the run measured, printed at its end."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from tests.reliability import figures

_COMMON = {"deadline": None, "derandomize": False, "print_blob": True,
           "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                     HealthCheck.data_too_large, HealthCheck.large_base_example]}
settings.register_profile("reliability-test", max_examples=figures.CASES_PER_ROUTE, **_COMMON)
settings.register_profile("reliability-soak", max_examples=figures.CASES_PER_ROUTE, **_COMMON)
RELIABILITY = settings.get_profile(f"reliability-{figures.PROFILE}")


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
