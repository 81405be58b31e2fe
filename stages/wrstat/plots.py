"""Pictures of the groups closest to full: usage over time, the quota, and the forecast.

One PNG per (volume, group, base directory), for the ``top`` groups with the highest
forecast share of their quota, written beside the reports as
``usage-<volume>-<group>-<base directory's last part>-<YYYYMMDD>.png``. Drawn with
matplotlib's Agg backend (no display needed), the y axis in one binary unit (TiB, GiB, ...).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")


def binary(n: float) -> str:
    """Bytes in binary units, for an axis.

    >>> binary(0), binary(1536), binary(3 * 2**40)
    ('0 B', '1.5 KiB', '3 TiB')
    """
    for unit in _UNITS:
        if abs(n) < 1024 or unit == _UNITS[-1]:
            text = f"{n:.1f}".rstrip("0").rstrip(".")
            return f"{text} {unit}"
        n /= 1024
    raise AssertionError  # unreachable: the loop returns at the last unit


@dataclass(frozen=True)
class GroupPicture:
    """What one picture shows."""

    volume: str
    group: str
    base_directory: str
    dates: Sequence[dt.date]
    used: Sequence[float]
    quota: float | None
    #: bytes a day, from the forecast's fit
    slope: float
    #: days ahead to draw the forecast to
    horizon: int = 7
    warning: str = ""
    #: the group's number (a name need not be unique)
    gid: int | None = None


def axis_unit(top: float) -> tuple[float, str]:
    """The one binary unit an axis up to ``top`` bytes is drawn in (round ticks), and its
    size in bytes.

    >>> axis_unit(5 * 2**40)
    (1099511627776.0, 'TiB')
    """
    power = 0
    while power < len(_UNITS) - 1 and top >= 1024.0 ** (power + 1):
        power += 1
    return 1024.0**power, _UNITS[power]


def save(fig: Any, path: Path) -> Path:
    """Write a figure as a PNG, atomically: a reader sees the old picture or the new one."""
    tmp = path.with_suffix(".png.tmp")
    fig.savefig(tmp, format="png")
    tmp.replace(path)
    return path


def _pyplot() -> Any:
    """matplotlib, loaded when a picture is drawn (it takes a second to import; the
    reports' other users of this module, and runs with nothing to draw, never pay it)."""
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")  # files only: no display, and safe in any worker process
    from matplotlib import pyplot  # noqa: PLC0415

    return pyplot


def _days(dates: Sequence[dt.date]) -> list[float]:
    """Dates as matplotlib's day numbers (days since 1970-01-01)."""
    epoch = dt.date(1970, 1, 1)
    return [float((d - epoch).days) for d in dates]


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "_"


def file_name(p: GroupPicture) -> str:
    """``usage-<volume>-<group>-<last part of the base directory>-<YYYYMMDD>.png``."""
    base = p.base_directory.rstrip("/").rsplit("/", 1)[-1]
    return f"usage-{_safe(p.volume)}-{_safe(p.group)}-{_safe(base)}-{p.dates[-1]:%Y%m%d}.png"


def draw_all(pictures: Sequence[GroupPicture], folder: Path) -> list[Path]:
    """Draw each picture under its own name (a number added where two would share one)."""
    paths = []
    taken: set[str] = set()
    for p in pictures:
        name = file_name(p)
        n = 1
        while name in taken:
            n += 1
            name = file_name(p).removesuffix(".png") + f"-{n}.png"
        taken.add(name)
        paths.append(draw(p, folder, name))
    return paths


def draw(p: GroupPicture, folder: Path, name: str | None = None) -> Path:
    """Write the picture of one group (as ``name``, else ``file_name(p)``); its path."""
    last = p.dates[-1]
    path = folder / (name or file_name(p))
    scale, unit = axis_unit(max([*p.used, p.quota or 0.0, p.used[-1] + p.slope * p.horizon]))
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    try:
        used = [u / scale for u in p.used]
        ax.plot(_days(p.dates), used, marker="o", color="#1f6fb2", label="used")
        ahead = last + dt.timedelta(days=p.horizon)
        ax.plot(_days([last, ahead]), [used[-1], used[-1] + p.slope * p.horizon / scale],
                linestyle="--", color="#1f6fb2", alpha=0.7,
                label=f"forecast ({binary(p.slope)}/day)")  # fmt: skip
        if p.quota:
            ax.axhline(p.quota / scale, color="#c0392b", linewidth=1.5,
                       label=f"quota {binary(p.quota)}")  # fmt: skip
        ax.xaxis_date()
        ax.set_ylabel(unit)
        title = f"{p.group} on {p.volume}: {p.base_directory}"
        ax.set_title(title + (f"  [{p.warning}]" if p.warning else ""), fontsize=10)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left", fontsize=8)
        fig.autofmt_xdate()
        fig.tight_layout()
        save(fig, path)
    finally:
        plt.close(fig)
    return path


def closest_to_full(pictures: Sequence[GroupPicture], top: int = 10) -> list[GroupPicture]:
    """The ``top`` pictures with the highest forecast share of their quota (groups without
    a quota left out)."""

    def share(p: GroupPicture) -> float:
        assert p.quota
        return (p.used[-1] + p.slope * p.horizon) / p.quota

    with_quota = [p for p in pictures if p.quota]
    return sorted(with_quota, key=share, reverse=True)[:top]
