"""Statistics of fixed-width time buckets, exact, from the records themselves.

Records are ``Columns``: group-by key columns, a time column (epoch seconds, or
milliseconds with ``unit="ms"``), value columns (NaN: no value for that record, as an rx
line has no latency) and optionally a label column naming the record (a file name). For a
window ``[start, end)`` cut into buckets of ``width`` seconds, every (key, bucket) gets a
row, empty buckets included, with its ``start``, its number of ``records``, and per value
field:

``count``, ``min`` and ``max`` (each with the ``time`` and ``label`` of the record it came
from: the earliest such record on a tie), ``mean``, ``total``, ``median``, ``p95``, ``p99``
(numpy's default, linear, percentiles), and ``over`` and ``over_pct``: how many values are
strictly over the field's threshold, and what share of ``count`` they are. An empty bucket
has count 0, total 0, over 0 and NaN for the rest.

Nothing is estimated: the values of each bucket are sorted (one sort for all buckets), so
statistics over any window and any width, from records of several replicas put together,
are the exact ones. Records are kept as they are for that reason (``stages.buckets.cache``
stores them compactly, per hour).

>>> import numpy as np
>>> r = Columns(client=np.array(["a", "a", "a"], dtype=object), time=np.array([0, 30, 70]),
...             latency=np.array([3.0, 1.0, 20.0]))
>>> s = bucket_stats(r, Spec(("client",), "time", ("latency",), {"latency": 15.0}), 0, 120, 60)
>>> s["latency_count"].tolist(), s["latency_median"].tolist(), s["latency_over"].tolist()
([2, 1], [2.0, 20.0], [0, 1])
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pipeline import Columns

#: the statistics of each field, in column order (``<field>_<stat>``)
STATS = ("count", "min", "min_time", "min_label", "max", "max_time", "max_label", "mean",
         "total", "median", "p95", "p99", "over", "over_pct")  # fmt: skip
PERCENTILES = {"median": 50.0, "p95": 95.0, "p99": 99.0}


@dataclass(frozen=True)
class Spec:
    """What to bucket: ``keys`` to group by, the ``time`` column, the value ``fields``,
    each field's threshold (``over``: strictly greater), the ``label`` column naming a
    record, and the time ``unit`` ("s" or "ms")."""

    keys: tuple[str, ...]
    time: str
    fields: tuple[str, ...]
    thresholds: Mapping[str, float] = field(default_factory=dict)
    label: str | None = None
    unit: str = "s"

    @property
    def scale(self) -> int:
        return 1000 if self.unit == "ms" else 1


def _codes(records: Columns, keys: tuple[str, ...]) -> tuple[np.ndarray, list[np.ndarray]]:
    """A code per record for its key, and the key columns' values per code (sorted)."""
    n = len(records)
    if not keys:
        return np.zeros(n, np.int64), []
    code = np.zeros(n, np.int64)
    for k in keys:
        _, inv = np.unique(records[k], return_inverse=True)
        code = code * (int(inv.max(initial=0)) + 1) + inv
    _, first, codes = np.unique(code, return_index=True, return_inverse=True)
    return codes.astype(np.int64), [records[k][first] for k in keys]


def _as_asked(codes: np.ndarray, key_values: list[np.ndarray], keys: list[tuple[Any, ...]],
              width: int) -> tuple[np.ndarray, list[np.ndarray]]:  # fmt: skip
    """Codes renumbered to the order of ``keys`` (-1: a key not asked for)."""
    found = list(zip(*(kv.tolist() for kv in key_values), strict=True)) if key_values else []
    asked = {k: j for j, k in enumerate(keys)}
    remap = np.array([asked.get(k, -1) for k in found] or [-1], dtype=np.int64)
    columns = [np.array([k[i] for k in keys], dtype=object) for i in range(width)]
    return (remap[codes] if len(codes) else codes), columns


def _lerp_percentile(v: np.ndarray, starts: np.ndarray, n: np.ndarray, q: float) -> np.ndarray:
    """Linear percentile ``q`` of each run ``v[starts[i]:starts[i] + n[i]]`` (sorted, n >= 1),
    computed as numpy's default method does."""
    h = (n - 1) * (q / 100.0)
    lo = np.floor(h).astype(np.int64)
    hi = np.minimum(lo + 1, n - 1)
    t = h - lo
    a, b = v[starts + lo], v[starts + hi]
    diff = b - a
    # numpy's _lerp: from the nearer end, so the result stays within [a, b]
    out: np.ndarray = np.where(t >= 0.5, b - diff * (1 - t), a + diff * t)
    return out


def bucket_stats(
    records: Columns,
    spec: Spec,
    start: int,
    end: int,
    width: int,
    keys: list[tuple[Any, ...]] | None = None,
    ranks: bool = True,
) -> Columns:
    """Every bucket of ``[start, end)`` (epoch seconds) ``width`` seconds wide, for every key
    of the records (or the given ``keys``, which may have no records), with the module's
    statistics. ``ranks=False`` leaves out what needs each bucket's values sorted (the
    median and percentiles, and the time and label of the min and max, left empty): the
    rest is counted in one pass, for a graph that shows means and totals."""
    if width <= 0 or end <= start:
        raise ValueError(f"a window needs start < end and a width > 0, got {start}, {end}, {width}")
    nb = -(-(end - start) // width)
    t = records[spec.time] if len(records) else np.empty(0, np.int64)
    inside = (t >= start * spec.scale) & (t < end * spec.scale)
    r = records.select(inside) if len(records) else records
    codes, key_values = _codes(r, spec.keys)
    if keys is not None:  # the keys asked for, in their order, with records or not
        codes, key_values = _as_asked(codes, key_values, keys, len(spec.keys))
        keep = codes >= 0
        r, codes = r.select(keep), codes[keep]
    nk = len(key_values[0]) if spec.keys else 1
    tr = r[spec.time] if len(r) else np.empty(0, np.int64)
    bucket = (tr // spec.scale - start) // width
    group = codes * nb + bucket
    ng = nk * nb
    out: dict[str, np.ndarray] = {}
    for i, k in enumerate(spec.keys):
        out[k] = np.repeat(key_values[i], nb)
    out["start"] = np.tile(start + width * np.arange(nb, dtype=np.int64), nk)
    out["records"] = np.bincount(group, minlength=ng).astype(np.int64)
    for f in spec.fields:
        out.update((_field_stats if ranks else _field_sums)(r, spec, f, group, ng))
    return Columns(out)


def _field_sums(
    r: Columns, spec: Spec, f: str, group: np.ndarray, ng: int
) -> dict[str, np.ndarray]:
    """``_field_stats`` without sorting: count, total, mean, min, max, over; no ranks."""
    v = r[f].astype(np.float64) if len(r) else np.empty(0)
    valid = ~np.isnan(v)
    v, g = v[valid], group[valid]
    n = np.bincount(g, minlength=ng).astype(np.int64)
    total = np.bincount(g, weights=v, minlength=ng) if len(v) else np.zeros(ng)
    has = n > 0
    res: dict[str, np.ndarray] = {f"{f}_count": n, f"{f}_total": total}
    for name, ufunc, fill in (("min", np.minimum, np.inf), ("max", np.maximum, -np.inf)):
        col = np.full(ng, fill)
        ufunc.at(col, g, v)
        col[~has] = np.nan
        res[f"{f}_{name}"] = col
        res[f"{f}_{name}_time"] = np.full(ng, -1, np.int64)
        res[f"{f}_{name}_label"] = np.full(ng, None, dtype=object)
    mean = np.full(ng, np.nan)
    mean[has] = total[has] / n[has]
    res[f"{f}_mean"] = mean
    for name in PERCENTILES:
        res[f"{f}_{name}"] = np.full(ng, np.nan)
    threshold = spec.thresholds.get(f)
    over = np.zeros(ng, np.int64)
    if threshold is not None and len(v):
        over = np.bincount(g[v > threshold], minlength=ng).astype(np.int64)
    res[f"{f}_over"] = over
    pct = np.full(ng, np.nan)
    pct[has] = 100.0 * over[has] / n[has]
    res[f"{f}_over_pct"] = pct
    return {k: res[k] for k in (f"{f}_{x}" for x in STATS)}


def _field_stats(
    r: Columns, spec: Spec, f: str, group: np.ndarray, ng: int
) -> dict[str, np.ndarray]:
    v_all = r[f].astype(np.float64) if len(r) else np.empty(0)
    valid = ~np.isnan(v_all)
    v, g = v_all[valid], group[valid]
    times = r[spec.time][valid] if len(r) else np.empty(0, np.int64)
    order = np.lexsort((times, v, g))
    v, g, times = v[order], g[order], times[order]
    labels = None
    if spec.label is not None and len(r):
        labels = r[spec.label][valid][order]
    n = np.bincount(g, minlength=ng).astype(np.int64)
    starts = np.concatenate([[0], np.cumsum(n)[:-1]]).astype(np.int64)
    has = n > 0
    s, c = starts[has], n[has]
    nan = np.full(ng, np.nan)
    res: dict[str, np.ndarray] = {f"{f}_count": n}
    lo_i = s
    # the earliest record of the largest value: the first of the last run of equal values
    run_start = np.arange(len(v))
    if len(v):
        new_run = np.concatenate([[True], (g[1:] != g[:-1]) | (v[1:] != v[:-1])])
        run_start = np.maximum.accumulate(np.where(new_run, np.arange(len(v)), 0))
    hi_i = run_start[s + c - 1] if len(v) else s
    for name, idx in (("min", lo_i), ("max", hi_i)):
        col = nan.copy()
        col[has] = v[idx]
        res[f"{f}_{name}"] = col
        tcol = np.full(ng, -1, np.int64)
        tcol[has] = times[idx]
        res[f"{f}_{name}_time"] = tcol
        lcol = np.full(ng, None, dtype=object)
        if labels is not None:
            lcol[has] = labels[idx]
        res[f"{f}_{name}_label"] = lcol
    total = np.zeros(ng)
    if len(v):
        total[has] = np.add.reduceat(v, s)
    mean = nan.copy()
    mean[has] = total[has] / c
    res[f"{f}_mean"] = mean
    res[f"{f}_total"] = total
    for name, q in PERCENTILES.items():
        col = nan.copy()
        if len(v):
            col[has] = _lerp_percentile(v, s, c, q)
        res[f"{f}_{name}"] = col
    threshold = spec.thresholds.get(f)
    over = np.zeros(ng, np.int64)
    if threshold is not None and len(v):
        over[has] = np.add.reduceat((v > threshold).astype(np.int64), s)
    res[f"{f}_over"] = over
    pct = nan.copy()
    pct[has] = 100.0 * over[has] / c
    res[f"{f}_over_pct"] = pct
    return {k: res[k] for k in (f"{f}_{x}" for x in STATS)}
