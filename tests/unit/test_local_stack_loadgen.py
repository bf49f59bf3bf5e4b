"""The soak driver's pure parts: which users it writes, how it reads CPU time, how it reports."""

from __future__ import annotations

import os

import pytest

from local_stack import loadgen
from local_stack.loadgen import ApiClient, Snapshot, SoakReport, Throughput


def test_load_users_are_valid_distinct_and_spread_over_50_states():
    users = [loadgen.user_body("r1", i) for i in range(1000)]
    assert len({u["email"] for u in users}) == 1000
    assert len({u["state"] for u in users}) == 50 and all(len(u["zipcode"]) == 5 for u in users)
    assert loadgen.PROBE_STATE in {u["state"] for u in users}  # probes query a partition that fills too


def test_cpu_time_is_read_from_proc_and_a_fraction_is_per_wall_second():
    assert loadgen.cpu_seconds(os.getpid()) > 0

    def busy(_: float) -> None:  # /proc counts in clock ticks (10 ms): spin until at least one more is counted
        start = loadgen.cpu_seconds(os.getpid())
        while loadgen.cpu_seconds(os.getpid()) == start:
            sum(range(10_000))

    assert loadgen.cpu_fraction(os.getpid(), 0.0, sleep=busy) > 0


def test_the_report_shows_the_ratios_the_issue_bounds():
    report = SoakReport(10_000, 4, fresh=Snapshot(0, 150.0, 200.0, 40.0, 0.05),
                        loaded=Snapshot(11_030, 165.0, 240.0, 36.0, 0.06),
                        fill=[Throughput(1000, 4, 25.0)])
    assert report.ratios() == pytest.approx({"latency_p50": 1.1, "throughput": 40 / 36})
    table = report.table()
    assert "POST → queryable p50    150 ms  165 ms" in table and "1.10×" in table and "6.0%" in table
    assert report.as_json()["fill_users_per_second"] == [40.0]


@pytest.mark.parametrize("url", ["http://10.0.0.1:8000", "http://example.com", "http://169.254.169.254"])
def test_only_loopback_is_ever_loaded(url):
    with pytest.raises(ValueError, match="only loopback"):
        ApiClient(url)
