"""Graphs of sender logs on demand: per-minute latency, bytes and errors of some clients.

For each client, over a window of whole minutes, from the records of its tx logs (every
machine): the mean latency of each minute, the bytes sent and the errors of each minute,
drawn as impulses as MetPX's stats plotter drew them, one panel each, stacked, with the
window's figures beside them: the largest latency (when, which file), the mean and the
smallest, the files counted, how many took longer than the threshold and what share, and
the total bytes and errors. The same figures per minute go to a CSV file.

The figures come from minute tables (``stages.buckets.view``), merged exactly: the
window's mean is over the files, not an average of minute means.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import Columns
from stages.buckets.stats import merge_tables

SPEC_FIELDS = ("latency", "bytes", "error")
CSV_COLUMNS = ("client", "minute", "files", "latency_mean", "latency_max", "latency_over",
               "bytes", "errors")  # fmt: skip


@dataclass
class Panel:
    """One client's minutes and window figures."""

    client: str
    minutes: Columns
    window: dict[str, Any]


def figures(
    client: str,
    tables: list[Columns],
    start: int,
    end: int,
    name: Callable[[int, float], bytes | None] | None = None,
) -> Panel:
    """A client's minutes of ``[start, end)`` (epoch seconds, whole minutes) and the
    window's figures, from its minute tables (``stages.buckets.cache.minute_table``).
    ``name``: the name of the record of a time and latency, for the largest latency."""
    minutes = merge_tables(tables, SPEC_FIELDS, start, end, 60)
    whole = merge_tables([minutes], SPEC_FIELDS, start, end, end - start)
    w = {n: whole[n][0].item() if hasattr(whole[n][0], "item") else whole[n][0]
         for n in whole.names}  # fmt: skip
    if w["latency_count"] and name is not None:  # the largest latency's record
        w["latency_max_label"] = name(w["latency_max_time"], w["latency_max"])
    return Panel(client, minutes, w)


def _when(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _label(w: dict[str, Any], threshold: float) -> str:
    if not w["latency_count"]:
        return "no files"
    name = w["latency_max_label"]
    name = name.decode("utf-8", "backslashreplace") if isinstance(name, bytes) else str(name)
    return (
        f"MAX {w['latency_max']:.1f} s at {_when(w['latency_max_time'])}\n  {name}\n"
        f"MEAN {w['latency_mean']:.2f} s   MIN {w['latency_min']:.1f} s\n"
        f"files {w['latency_count']:,}   over {threshold:g} s: {w['latency_over']:,} "
        f"({w['latency_over_pct']:.2f}%)\n"
        f"bytes {int(w['bytes_total']):,}   errors {int(w['error_total']):,}"
    )


def draw(panels: list[Panel], path: Path, start: int, end: int, threshold: float) -> Path:
    """The PNG of ``panels`` (three stacked plots per client)."""
    import matplotlib  # noqa: PLC0415 - only when a graph is drawn

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    hours = (end - start) / 3600
    fig, axes = plt.subplots(3 * len(panels), 1, figsize=(14.4, 2.4 * 3 * len(panels)),
                             sharex=True, squeeze=False)  # fmt: skip
    queried = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    for k, p in enumerate(panels):
        m = p.minutes
        x = (m["start"].astype("datetime64[s]")).astype("datetime64[m]")
        series = (
            ("latency (seconds)", m["latency_mean"], "tab:blue"),
            ("bytes / minute", m["bytes_total"], "tab:green"),
            ("errors / minute", m["error_total"], "tab:red"),
        )
        for j, (ylabel, y, colour) in enumerate(series):
            ax = axes[3 * k + j, 0]
            ax.vlines(x, 0, np.nan_to_num(y), colors=colour, linewidth=0.8)
            ax.set_ylabel(ylabel)
            ax.grid(True, alpha=0.3)
            if j == 0:
                ax.axhline(threshold, color="grey", linestyle="--", linewidth=0.8)
                ax.set_title(f"Latencies for {p.client} queried at {queried} for a span of "
                             f"{hours:g} hours", loc="left", fontsize=10)  # fmt: skip
                ax.text(1.01, 1.0, _label(p.window, threshold), transform=ax.transAxes,
                        va="top", fontsize=8, family="monospace")  # fmt: skip
    # laid out by hand: matplotlib's automatic layout costs more than the drawing
    fig.subplots_adjust(left=0.07, right=0.74, top=0.96, bottom=0.06, hspace=0.18)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def write_csv(panels: list[Panel], path: Path) -> Path:
    lines = [",".join(CSV_COLUMNS)]
    for p in panels:
        m = p.minutes
        cols = [m[n].tolist() for n in ("start", "records", "latency_mean", "latency_max",
                                        "latency_over", "bytes_total", "error_total")]  # fmt: skip
        for start, files, mean, mx, over, nbytes, errors in zip(*cols, strict=True):
            minute = dt.datetime.fromtimestamp(start, dt.UTC).strftime("%Y-%m-%dT%H:%MZ")
            lines.append(",".join([p.client, minute, str(files), _num(mean), _num(mx), str(over),
                                   str(int(nbytes)), str(int(errors))]))  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _num(v: float) -> str:
    return "" if math.isnan(v) else f"{v:.3f}"
