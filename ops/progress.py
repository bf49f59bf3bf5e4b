"""A rich progress bar for long operator runs: done/total, items per second, elapsed and ETA."""

from __future__ import annotations

from collections.abc import Callable

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text


class RateColumn(ProgressColumn):
    """`1,234 items/s` (rich's own speed column counts bytes)."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("…/s" if speed is None else f"{speed:,.0f} items/s", style="progress.data.speed")


def progress_bar(console: Console, enabled: bool = True) -> Progress:
    """Description, bar, done/total, rate, elapsed, ETA; `enabled=False` draws nothing."""
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
        disable=not enabled,
        transient=False,
    )


def counter(progress: Progress, task: TaskID) -> Callable[[str, int], None]:
    """`(scan, count)` → advance `task`, growing its total when the count passes it (AWS's ItemCount, the
    estimate, is refreshed only about every six hours)."""

    def advance(_scan: str, count: int) -> None:
        progress.advance(task, count)
        current = progress.tasks[task]
        if current.total is not None and current.completed > current.total:
            progress.update(task, total=current.completed)

    return advance
