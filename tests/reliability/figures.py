"""What a reliability run measured, gathered across its tests and printed as the table RELIABILITY.md records.

Each test adds rows (`record(section, row)`); the run's end prints them (conftest) and, when
`RELIABILITY_REPORT` names a file, writes the same table there as Markdown.
"""

from __future__ import annotations

import os
from collections import defaultdict
from typing import Any

# Scale and effort of a run: `make test` runs the bounded profile, `make soak` the long one.
PROFILE = os.environ.get("RELIABILITY_PROFILE", "test")
SOAK = PROFILE == "soak"
CASES_PER_ROUTE = 500 if SOAK else 20  # hypothesis examples per HTTP route
CASES_PER_CONSUMER = 200 if SOAK else 15  # hypothesis examples (batches of up to 17 records) per consumer
STREAM_RECORDS = 10_000 if SOAK else 500  # stream records under injected faults
MESSAGES = 10_000 if SOAK else 500  # ingest messages under injected faults
DUPLICATED_RECORDS = 1_000 if SOAK else 300  # stream records whose every batch is delivered twice
FAULT_RATE = float(os.environ.get("RELIABILITY_FAULT_RATE", "0.3"))

_rows: dict[str, list[dict[str, Any]]] = defaultdict(list)


def record(section: str, **row: Any) -> None:
    """Add one row to `section` of the run's table."""
    _rows[section].append(row)


def markdown() -> str:
    """Every section as a Markdown table (columns in the order the first row gave them)."""
    parts: list[str] = []
    for section, rows in _rows.items():
        columns = list(dict.fromkeys(name for row in rows for name in row))
        parts.append(f"### {section}\n")
        parts.append("| " + " | ".join(columns) + " |")
        parts.append("|" + "|".join("---" for _ in columns) + "|")
        for row in rows:
            parts.append("| " + " | ".join(_cell(row.get(name, "")) for name in columns) + " |")
        parts.append("")
    return "\n".join(parts)


def _cell(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.1f}"
    return str(value).replace("|", "\\|")
