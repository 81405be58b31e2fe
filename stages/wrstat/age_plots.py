"""Pictures of age profiles: how much of a volume was last changed, and last read, how long
ago, in wrstat's age classes.

One PNG per volume, ``ages-<volume>-<YYYYMMDD>.png``: two panels (by mtime, by atime) of
stacked bars, one bar per age class, one colour for each of the largest groups on the
volume and one for all the others together.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from stages.wrstat.enrich import AgeFigures
from stages.wrstat.layout import AGE_CLASSES
from stages.wrstat.plots import _pyplot, _safe, axis_unit, save

OTHERS = "other groups"


@dataclass(frozen=True)
class AgePicture:
    """One volume's profile: per group shown (largest first, then ``OTHERS``), its usage in
    each age class by mtime and by atime."""

    volume: str
    date: dt.date
    groups: Sequence[str]
    by_mtime: Sequence[Sequence[int]]
    by_atime: Sequence[Sequence[int]]


def pictures(
    ages: Sequence[AgeFigures], date: dt.date, name: Callable[[int], str], top: int = 6
) -> list[AgePicture]:
    """The pictures of a date's age rows: per volume, its ``top`` largest groups by usage
    and the rest together."""
    out = []
    for volume in sorted({a.volume for a in ages}):
        rows = sorted((a for a in ages if a.volume == volume),
                      key=lambda a: (-sum(a.usage_by_mtime), a.gid))  # fmt: skip
        shown, rest = rows[:top], rows[top:]
        groups = [name(a.gid) for a in shown]
        mtime = [list(a.usage_by_mtime) for a in shown]
        atime = [list(a.usage_by_atime) for a in shown]
        if rest:
            groups.append(OTHERS)
            mtime.append([sum(col) for col in zip(*(a.usage_by_mtime for a in rest), strict=True)])
            atime.append([sum(col) for col in zip(*(a.usage_by_atime for a in rest), strict=True)])
        out.append(AgePicture(volume, date, groups, mtime, atime))
    return out


def file_name(p: AgePicture) -> str:
    return f"ages-{_safe(p.volume)}-{p.date:%Y%m%d}.png"


def draw(p: AgePicture, folder: Path) -> Path:
    """Write one volume's picture; its path."""
    path = folder / file_name(p)
    scale, unit = axis_unit(max(sum(col) for panel in (p.by_mtime, p.by_atime)
                                for col in zip(*panel, strict=True)))  # fmt: skip
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12.5, 4.5), dpi=100, sharey=True)
    try:
        x = range(len(AGE_CLASSES))
        for ax, panel, title in ((axes[0], p.by_mtime, "by last modified (mtime)"),
                                 (axes[1], p.by_atime, "by last read (atime)")):  # fmt: skip
            bottom = [0.0] * len(AGE_CLASSES)
            for group, usage in zip(p.groups, panel, strict=True):
                height = [u / scale for u in usage]
                colour = "#bbbbbb" if group == OTHERS else None
                ax.bar(x, height, bottom=bottom, label=group, color=colour, width=0.8)
                bottom = [b + h for b, h in zip(bottom, height, strict=True)]
            ax.set_xticks(list(x), AGE_CLASSES, fontsize=8)
            ax.set_title(title, fontsize=10)
            ax.grid(axis="y", alpha=0.3)
        axes[0].set_ylabel(unit)
        handles, labels = axes[1].get_legend_handles_labels()
        fig.legend(handles[::-1], labels[::-1], loc="center right", fontsize=8)  # top first
        fig.suptitle(f"{p.volume} on {p.date:%Y-%m-%d}: usage by age", fontsize=11)
        fig.tight_layout(rect=(0, 0, 0.87, 1))
        save(fig, path)
    finally:
        plt.close(fig)
    return path


def draw_all(ps: Sequence[AgePicture], folder: Path) -> list[Path]:
    return [draw(p, folder) for p in ps]
