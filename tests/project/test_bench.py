"""`make bench --quick`: the harness runs every part end to end with tiny sizes and reports what it measured.

Behaviour only, never speed: each column made the calls it stands for (naive: one per write or event; floor and
project: the same batched requests), every consumer has its CPU and memory row, the cold start is measured, and
the report carries the machine, the command and a verdict beside each goal.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def rows(text: str, header: str) -> dict[str, list[str]]:
    """The table whose header starts with `header`, by first cell."""
    lines = text.split("\n" + header, 1)[1].splitlines()[2:]
    table = {}
    for line in lines:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        table[cells[0]] = cells[1:]
    return table


def test_quick_bench_measures_every_part_and_reports_the_calls_of_each_column(tmp_path: Path) -> None:
    out = tmp_path / "BENCHMARKS.md"
    done = subprocess.run([sys.executable, "-m", "benchmarks.bench", "--quick", "--out", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    report = out.read_text()

    consumers = rows(report, "| consumer | records | naive calls")
    # 100 records in one Lambda batch. Replication: 75 INSERTs put, 25 moves delete and put (125 writes).
    expected = {"replication": ("125", "5", "5"), "fanout": ("100", "10", "10"), "ingest": ("100", "4", "4")}
    for consumer, (naive, floor, project) in expected.items():
        cells = consumers[consumer]
        assert cells[0] == "100"
        assert (cells[1], cells[3], cells[5]) == (naive, floor, project), cells
        assert all(float(cells[i]) > 0 for i in (2, 4, 6))
        assert cells[-1] in ("PASS", "**MISS**")

    cpu = rows(report, "| consumer | µs/record")
    assert set(cpu) == {"replication", "fanout", "ingest"}
    assert all(float(cells[0]) > 0 and float(cells[2]) > 0 for cells in cpu.values())

    cold = rows(report, "| import | median ms")
    assert float(cold["`import app`"][1].rstrip("×")) > 0
    first = rows(report, "| handler | first call ms")
    assert set(first) == {"replicate_users", "fanout_users", "ingest_device_metadata"}

    assert re.search(r"Machine: .+ cores, Python 3\.\d+", report)
    assert "make bench BENCH_ARGS='--quick" in report
    assert "Not measured in this run" in report  # the local stack is left out of --quick
