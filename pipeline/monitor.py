"""``pipeline monitor``: a live view of a running frame in a terminal, with controls.

It follows the status the frame publishes once a second (``pipeline.status``) and sends
requests to its control endpoint (``pipeline.control``). One row per stage: replicas
alive/desired, records/s in and out, backlog, busy share, batch latency p50/p99, errors, CPU
and memory; below it, the replicas of the selected stage (pid, state, CPU, memory, busy,
batches held). It fits an 80x24 terminal (over ssh too) and redraws at every status.

Keys: up/down or j/k select a stage, ``+``/``-`` scale it up or down by one replica, ``p``
pause, ``r`` resume, ``S`` stop the frame (graceful), ``q`` quit the monitor (the frame goes
on). When the frame stops, the monitor says so and exits.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import sys
import termios
import time
import tty
from collections.abc import Iterator
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from pipeline import registry
from pipeline.errors import ControlError
from pipeline.progress import amount, clock
from pipeline.remote import RemoteFrame

#: no status for this long, and no answer either: the frame has stopped
GONE_AFTER = 3.0

#: stage rows shown at once, and progress bars, so that the screen fits 24 lines
STAGE_ROWS = 9
PROGRESS_ROWS = 2

KEYS_HELP = "↑↓ stage  + - replicas  p pause  r resume  S stop  q quit"


def _ms(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 0.01:
        return f"{seconds * 1000:.1f}ms"
    return f"{seconds * 1000:.0f}ms" if seconds < 1 else f"{seconds:.1f}s"


def _short(value: float) -> str:
    """A count or rate in at most 6 characters: 950, 12.3k, 4.56M."""
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= limit:
            v = value / limit
            return f"{v:.1f}{suffix}" if v < 100 else f"{v:.0f}{suffix}"
    return f"{value:.0f}"


def _state_style(state: str) -> str:
    return {"running": "green", "paused": "yellow", "stopping": "yellow"}.get(state, "red")


def render(status: dict[str, Any], selected: int, message: str, width: int = 80) -> Group:
    """The whole screen for one status; ``selected`` is the index of the selected stage."""
    head = Text()
    head.append(f"{status['frame']} ", style="bold")
    head.append(status["state"], style=_state_style(status["state"]))
    head.append(f"  up {clock(status['uptime'])}  pid {status['pid']}")
    if status.get("rescale"):
        r = status["rescale"]
        head.append(f"  scaling {r['stage']} {r['from']}→{r['to']} ({r['phase']})", style="cyan")
    table = Table(box=None, padding=(0, 1), collapse_padding=True, pad_edge=False,
                  header_style="bold")  # fmt: skip
    cols = [("stage", "left", 14), ("repl", "right", 5), ("in/s", "right", 6),
            ("out/s", "right", 6), ("queue", "right", 5), ("busy", "right", 4),
            ("p50", "right", 5), ("p99", "right", 5), ("err", "right", 4),
            ("cpu", "right", 4), ("mem", "right", 7)]  # fmt: skip
    for name, justify, w in cols:
        table.add_column(name, justify=justify, min_width=w, max_width=w, no_wrap=True)  # type: ignore[arg-type]
    names = list(status["stages"])
    first = min(max(0, selected - STAGE_ROWS // 2), max(0, len(names) - STAGE_ROWS))
    shown = range(first, min(len(names), first + STAGE_ROWS))  # the rows that fit
    for i in shown:
        name = names[i]
        s = status["stages"][name]
        repl = "done" if s["ended"] else f"{s['alive']}/{s['desired']}"
        table.add_row(
            name, repl, _short(s["rate_in"]), _short(s["rate_out"]), _short(s["backlog"]),
            f"{s['busy']:.0%}", _ms(s["p50"]), _ms(s["p99"]), _short(s["errors"]),
            f"{s['cpu']:.0%}", amount(s["rss"], "bytes").replace(" ", ""),
            style="reverse" if i == selected else ("dim" if s["ended"] else None),
        )  # fmt: skip
    parts: list[Any] = [head, table]
    if len(shown) < len(names):
        parts.append(Text(f"stages {first + 1}-{shown[-1] + 1} of {len(names)} (↑↓ to see more)",
                          style="dim"))  # fmt: skip
    bars = 0
    for i in shown:  # stages that know how far they are: a bar and the time left
        bar = _progress(names[i], status["stages"][names[i]], status["uptime"], width)
        if bar is not None and bars < PROGRESS_ROWS:
            parts.append(bar)
            bars += 1
    if names:
        parts.append(_replicas(names[min(selected, len(names) - 1)], status))
    hosts = status.get("hosts") or []
    if hosts:  # the other hosts of the frame, as they stand
        said = " · ".join(f"{h['name']} {h['state']} ({h['workers']})" for h in hosts)
        lost = any(h["state"] == "lost" for h in hosts)
        parts.append(Text(f"hosts: {said}"[: width - 1], style="red" if lost else "dim"))
    for e in status.get("errors", [])[-2:]:
        parts.append(Text(f"error: {e}"[: width - 1], style="red"))
    parts.append(Text(message[: width - 1], style="cyan"))
    parts.append(Text(KEYS_HELP, style="dim"))
    return Group(*parts)


def _progress(name: str, s: dict[str, Any], uptime: float, width: int) -> Table | None:
    """``name  [bar] 42%  1.2 GB of 2.9 GB  0:00:31 left`` for a stage that says how far it
    is through its input (``Context.progress``), while it runs."""
    if not s.get("progress") or s["ended"]:
        return None
    done, total, unit = s["progress"]
    if total <= 0:
        return None
    share = min(1.0, done / total)
    left = uptime * (1 - share) / share if share > 0 else None
    grid = Table.grid(padding=(0, 1))
    grid.add_row(
        Text(name[:14].ljust(14)),
        ProgressBar(total=total, completed=done, width=max(10, width - 58)),
        f"{share:4.0%}",
        f"{amount(done, unit)} of {amount(total, unit)}",
        f"{clock(left)} left" if left is not None else "",
    )
    return grid


def _replicas(name: str, status: dict[str, Any]) -> Table:
    s = status["stages"][name]
    table = Table(box=None, padding=(0, 1), collapse_padding=True, pad_edge=False,
                  header_style="bold", title_justify="left",
                  title=f"{name}: {s['records_in']:,} in, {s['records_out']:,} out")  # fmt: skip
    placed = any(r.get("host") for r in s["replicas"])  # some run on other hosts
    cols = ("#", "pid", "state", "in/s", "busy", "cpu", "mem", "held", *(("host",) * placed))
    for col in cols:
        table.add_column(col, justify="left" if col in ("state", "host") else "right",
                         no_wrap=True, max_width=14 if col == "host" else None)  # fmt: skip
    for r in s["replicas"][:8]:
        table.add_row(
            str(r["index"]), str(r["pid"] or "-"), r["state"], _short(r["rate_in"]),
            f"{r['busy']:.0%}", f"{r['cpu']:.0%}", amount(r["rss"], "bytes").replace(" ", ""),
            str(r["held"]), *((r.get("host") or "here",) * placed),
        )  # fmt: skip
    if len(s["replicas"]) > 8:
        table.add_row("…", f"+{len(s['replicas']) - 8}", *([""] * (len(cols) - 2)))
    return table


@contextlib.contextmanager
def raw_keys() -> Iterator[int | None]:
    """Standard input in cbreak mode (keys arrive one by one, unechoed); its fd, or None
    when it is not a terminal."""
    fd = sys.stdin.fileno()
    if not os.isatty(fd):
        yield None
        return
    saved = termios.tcgetattr(fd)
    try:
        tty.setcbreak(fd)
        yield fd
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def read_keys(fd: int) -> list[str]:
    """The keys pressed (arrows as "up"/"down")."""
    data = os.read(fd, 64).decode(errors="replace")
    keys: list[str] = []
    i = 0
    while i < len(data):
        if data.startswith(("\x1b[A", "\x1bOA"), i):
            keys.append("up")
            i += 3
        elif data.startswith(("\x1b[B", "\x1bOB"), i):
            keys.append("down")
            i += 3
        else:
            keys.append(data[i])
            i += 1
    return keys


class Monitor:
    """The monitor's loop: statuses in, keys in, the screen out."""

    def __init__(self, frame: RemoteFrame, console: Console | None = None) -> None:
        self.frame = frame
        self.console = console or Console()
        self.selected = 0
        self.message = "connected"
        self.status: dict[str, Any] = frame.status()
        self.last_seen = time.monotonic()

    def run(self) -> str:
        """Until ``q`` or the frame's end; what to print when done."""
        sub = self.frame.subscribe()
        with raw_keys() as keys_fd, Live(
            self._screen(), console=self.console, screen=True, auto_refresh=False
        ) as live:  # fmt: skip
            while True:
                ready = self._wait(sub.fileno(), keys_fd)
                if keys_fd is not None and keys_fd in ready:
                    for key in read_keys(keys_fd):
                        if key == "q":
                            return f"{self.frame.name}: monitor closed; the frame goes on"
                        self.on_key(key)
                payload = sub.receive(0)
                if payload is not None:
                    self.status = json.loads(payload)
                    self.last_seen = time.monotonic()
                elif time.monotonic() - self.last_seen > GONE_AFTER and self._gone():
                    live.update(self._screen("the frame has stopped"), refresh=True)
                    time.sleep(1.0)
                    return f"{self.frame.name} (pid {self.frame.pid}) has stopped"
                live.update(self._screen(), refresh=True)

    @staticmethod
    def _wait(sub_fd: int, keys_fd: int | None) -> set[int]:
        fds = [sub_fd] + ([keys_fd] if keys_fd is not None else [])
        ready, _, _ = select.select(fds, [], [], 0.5)
        return set(ready)

    def _gone(self) -> bool:
        if not registry.alive(self.frame.pid):
            return True
        try:
            self.status = self.frame.status()
        except ControlError:
            return True
        self.last_seen = time.monotonic()
        return False

    def _screen(self, message: str | None = None) -> Group:
        return render(self.status, self.selected, message or self.message, self.console.width)

    def on_key(self, key: str) -> None:
        names = list(self.status["stages"])
        if key in ("up", "k"):
            self.selected = max(0, self.selected - 1)
        elif key in ("down", "j"):
            self.selected = min(len(names) - 1, self.selected + 1)
        elif key in ("+", "=", "-", "_") and names:
            stage = names[self.selected]
            n = self.status["stages"][stage]["desired"] + (1 if key in "+=" else -1)
            self._request(f"scale {stage} to {n}", "scale", stage=stage, replicas=n)
        elif key == "p":
            self._request("pause", "pause")
        elif key == "r":
            self._request("resume", "resume")
        elif key == "S":
            self._request("stop (draining)", "stop")

    def _request(self, what: str, command: str, **args: Any) -> None:
        try:
            self.frame.request(command, **args)
            self.message = f"{what}: ok"
        except ControlError as exc:
            self.message = f"{what}: refused: {exc.reason}"
