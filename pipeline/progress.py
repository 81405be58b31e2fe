"""The live view of a run on a terminal: one row per stage, redrawn a few times a second.

Each row shows the stage's replicas, records in and out, and its rate; a stage whose
replicas say how far they are through their input (``Context.progress``, e.g. bytes of the
files a reader has read) also gets a bar with the share done and the time left. The view
goes away when the run ends, and the final report is printed in its place.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from types import TracebackType

from rich.console import Console
from rich.filesize import decimal
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from pipeline.stats import StageTotals


def amount(value: float, unit: str) -> str:
    """``value`` for people: bytes as kB, MB, GB; anything else with thousands separators."""
    if unit == "bytes":
        return decimal(int(value))
    return f"{value:,.0f} {unit}".rstrip()


def clock(seconds: float) -> str:
    seconds = int(max(0.0, seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"


def render(stages: Mapping[str, StageTotals], elapsed: float, title: str = "") -> Table:
    """The view of the stages' current totals, ``elapsed`` seconds into the run."""
    table = Table(title=title or None, title_justify="left", box=None, padding=(0, 1))
    for header, justify in (("stage", "left"), ("replicas", "right"), ("in", "right"),
                            ("out", "right"), ("rate", "right"), ("progress", "left")):  # fmt: skip
        table.add_column(header, justify=justify)  # type: ignore[arg-type]
    for name, t in stages.items():
        records = t.records_in or t.records_out
        rate = f"{records / elapsed:,.0f}/s" if elapsed > 0 else "-"
        progress: Text | Table = Text("")
        if t.progress_total > 0:
            share = min(1.0, t.progress_done / t.progress_total)
            left = elapsed * (1 - share) / share if share > 0 else None
            bar = Table.grid(padding=(0, 1))
            bar.add_row(
                ProgressBar(total=t.progress_total, completed=t.progress_done, width=24),
                f"{share:4.0%}",
                f"{amount(t.progress_done, t.progress_unit)} of "
                f"{amount(t.progress_total, t.progress_unit)}",
                f"{clock(left)} left" if left is not None else "",
            )
            progress = bar
        table.add_row(
            name, str(t.replicas), f"{t.records_in:,}", f"{t.records_out:,}", rate, progress
        )
    return table


class LiveView:
    """Redraws ``render`` on ``console`` while the run goes on (a context manager)."""

    def __init__(self, title: str, console: Console | None = None, every: float = 0.25) -> None:
        self.title = title
        self.console = console or Console(stderr=True)
        self.every = every
        self.t0 = time.monotonic()
        self._last = 0.0
        self.live = Live(console=self.console, transient=True, auto_refresh=False)

    def __enter__(self) -> LiveView:
        self.live.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.live.stop()

    def due(self) -> bool:
        """Time to draw again (at most every ``every`` seconds)."""
        return time.monotonic() - self._last >= self.every

    def update(self, stages: Mapping[str, StageTotals]) -> None:
        now = time.monotonic()
        self._last = now
        self.live.update(render(stages, now - self.t0, self.title), refresh=True)
