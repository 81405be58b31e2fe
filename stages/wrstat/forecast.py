"""How soon a group fills its quota: usage forecasts and warning levels, for many groups at once.

lurge extrapolated from two history points (and divided by zero when their dates matched).
Here each (volume, group, base directory) gets a least-squares line through its last few
snapshots (5 by default; days since the newest snapshot against bytes used), all groups in
one pass of numpy sums. The forecast ``ahead`` days after the newest snapshot is its usage
then plus the line's slope times ``ahead``: anchored at what is used now, sloped by the
recent trend. One snapshot, or snapshots all on one date, give a flat forecast. Days until
full are ``(quota - used) / slope`` for a growing group with a quota (0 once over it), else
none.

Warning levels follow lurge's configuration by default: **Not OK** (3) if the 3-day forecast
passes 80% of the quota or the 7-day one 95%; **Kinda OK** (2) if the 7-day forecast passes
85%; **OK** (1) otherwise, and for a group without a quota. A rule looks at the larger of
the forecast and the usage now: a group over a line today is not let off by a forecast that
it will shrink below it. The table is configurable.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

#: snapshots a forecast is fitted to, newest first
DEFAULT_POINTS = 5

#: level -> (name, [(days ahead, share of the quota the forecast must pass)])
LURGE_LEVELS: dict[int, tuple[str, tuple[tuple[int, float], ...]]] = {
    1: ("OK", ()),
    2: ("Kinda OK", ((7, 0.85),)),
    3: ("Not OK", ((3, 0.80), (7, 0.95))),
}

Array = np.ndarray[Any, Any]


@dataclass(frozen=True)
class Thresholds:
    """Warning levels: each is raised when any of its (days ahead, share) rules holds; the
    highest raised level wins; the lowest level is the default."""

    levels: Mapping[int, tuple[str, tuple[tuple[int, float], ...]]]

    @classmethod
    def lurge(cls) -> Thresholds:
        return cls(LURGE_LEVELS)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Thresholds:
        """From a stage parameter such as ``{"Kinda OK": {7: 0.85}, "Not OK": {3: 0.8,
        7: 0.95}}`` (levels in rising order; "OK" is the level below them all)."""
        levels: dict[int, tuple[str, tuple[tuple[int, float], ...]]] = {1: ("OK", ())}
        for n, (name, rules) in enumerate(config.items(), start=2):
            if not isinstance(rules, Mapping) or not rules:
                msg = (
                    f"warning level {name!r}: give {{days ahead: share of quota}}, e.g. {{7: 0.85}}"
                )
                raise ValueError(msg)
            parsed = []
            for days, share in rules.items():
                d, s = int(days), float(share)
                if d < 0 or s <= 0:
                    msg = f"warning level {name!r}: {days}: {share} needs days >= 0, share > 0"
                    raise ValueError(msg)
                parsed.append((d, s))
            levels[n] = (str(name), tuple(sorted(parsed)))
        return cls(levels)

    @property
    def horizons(self) -> list[int]:
        """Every number of days ahead a rule looks at."""
        return sorted({d for _, rules in self.levels.values() for d, _ in rules})

    def name(self, level: int) -> str:
        return self.levels[level][0]


@dataclass
class Forecasts:
    """Per group: the fitted slope (bytes a day), usage forecast per horizon, days until
    the quota is full (NaN: never, or no quota) and the warning level."""

    slope: Array
    ahead: dict[int, Array]
    days_to_full: Array
    level: Array


def fit_slopes(group: Array, day: Array, used: Array, groups: int) -> Array:
    """The least-squares slope of ``used`` against ``day`` within each group (0 where a
    group has fewer than two distinct days).

    >>> fit_slopes(np.array([0, 0, 0, 1]), np.array([-2.0, -1.0, 0.0, 0.0]),
    ...            np.array([10.0, 20.0, 30.0, 5.0]), 2).tolist()
    [10.0, 0.0]
    """
    n = np.bincount(group, minlength=groups).astype(np.float64)
    sx = np.bincount(group, day, groups)
    sy = np.bincount(group, used, groups)
    # centre each group's days first: exact sums even for large day numbers
    mean_x = np.divide(sx, n, out=np.zeros(groups), where=n > 0)
    mean_y = np.divide(sy, n, out=np.zeros(groups), where=n > 0)
    dx = day - mean_x[group]
    dy = used - mean_y[group]
    sxx = np.bincount(group, dx * dx, groups)
    sxy = np.bincount(group, dx * dy, groups)
    out: Array = np.divide(sxy, sxx, out=np.zeros(groups), where=sxx > 1e-12)
    return out


def last_points(group: Array, day: Array, points: int) -> Array:
    """A mask of each group's ``points`` newest entries (by ``day``)."""
    order = np.lexsort((-day, group))  # by group, newest first
    g = group[order]
    starts = np.r_[0, np.flatnonzero(g[1:] != g[:-1]) + 1]
    rank = np.arange(len(g)) - np.repeat(starts, np.diff(np.r_[starts, len(g)]))
    keep = np.zeros(len(group), dtype=bool)
    keep[order[rank < points]] = True
    return keep


def forecast(
    group: Array,
    day: Array,
    used: Array,
    current: Array,
    quota: Array,
    thresholds: Thresholds | None = None,
    points: int = DEFAULT_POINTS,
) -> Forecasts:
    """Forecasts for ``len(current)`` groups from their history rows (``group`` index,
    ``day``: days relative to the newest snapshot, 0 or less; ``used``: bytes), the usage
    now (``current``) and the quota (``quota``; 0 or less: none)."""
    thresholds = thresholds or Thresholds.lurge()
    groups = len(current)
    keep = last_points(group, day, points) if len(group) else np.zeros(0, dtype=bool)
    slope = fit_slopes(group[keep], day[keep].astype(np.float64),
                       used[keep].astype(np.float64), groups)  # fmt: skip
    cur = current.astype(np.float64)
    q = quota.astype(np.float64)
    ahead = {d: cur + slope * d for d in thresholds.horizons}
    has_quota = q > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        to_full = np.where(cur >= q, 0.0, (q - cur) / slope)
    to_full = np.where(has_quota & ((slope > 0) | (cur >= q)), to_full, np.nan)
    level = np.full(groups, min(thresholds.levels), dtype=np.int8)
    for lv in sorted(thresholds.levels):
        _, rules = thresholds.levels[lv]
        for d, share in rules:
            over = np.maximum(ahead[d], cur) > share * q
            level = np.where(has_quota & over, np.maximum(level, lv), level)
    return Forecasts(slope, ahead, to_full, level)


def warning_names(levels: Array, thresholds: Thresholds | None = None) -> Sequence[str]:
    t = thresholds or Thresholds.lurge()
    return [t.name(int(lv)) for lv in levels]
