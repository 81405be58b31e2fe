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

What needs no sorting (counts, totals, min and max with their times, over) also adds up:
``bucket_table`` counts it per bucket into a small table, and ``merge_tables`` puts tables
of several sources and hours together into the buckets of any window whose buckets hold
theirs whole, with the figures ``bucket_stats`` gives from the records (ranks aside).

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
#: what a bucket table holds of each field (``<field>_<stat>``), after ``start`` and ``records``
TABLE_STATS = ("count", "total", "min", "min_time", "max", "max_time", "over")


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
) -> Columns:
    """Every bucket of ``[start, end)`` (epoch seconds) ``width`` seconds wide, for every key
    of the records (or the given ``keys``, which may have no records), with the module's
    statistics."""
    if width <= 0 or end <= start:
        raise ValueError(f"a window needs start < end and a width > 0, got {start}, {end}, {width}")
    nb = -(-(end - start) // width)
    t = records[spec.time] if len(records) else np.empty(0, np.int64)
    inside = (t >= start * spec.scale) & (t < end * spec.scale)
    r = records.select(inside) if not inside.all() else records  # all: no copy
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
        out.update(_field_stats(r, spec, f, group, ng))
    return Columns(out)


def _earliest(
    best: np.ndarray, g: np.ndarray, v: np.ndarray, times: np.ndarray, ng: int
) -> np.ndarray:
    """Per group, the earliest time of the values equal to the group's ``best`` (-1: none)."""
    hit = v == best[g]
    first = np.full(ng, np.iinfo(np.int64).max, np.int64)
    np.minimum.at(first, g[hit], times[hit].astype(np.int64))
    first[first == np.iinfo(np.int64).max] = -1
    return first


def bucket_table(records: Columns, spec: Spec, start: int, end: int, width: int) -> Columns:
    """What of ``bucket_stats`` adds up, for every bucket of ``[start, end)``: ``start``,
    ``records`` and, per field, ``TABLE_STATS`` (an empty bucket: count, total and over 0,
    min and max NaN, their times -1), every column float64 (times in the unit of the
    records' times: epoch ms fit exactly) so a table is kept as one 2-D array. ``spec`` has
    no keys: a table is of one source.

    One pass over the records in time order (sorted first if they are not; an hour file's
    are): each bucket is a run, so nothing is scattered, and the first record of a run with
    its min (max) has the earliest time of them. Totals are added pairwise within a
    run, so they may differ from ``bucket_stats``' in the last bits.

    >>> r = Columns(time=np.array([0, 30, 70]), x=np.array([3.0, 1.0, 3.0]))
    >>> t = bucket_table(r, Spec((), "time", ("x",)), 0, 120, 60)
    >>> t["x_count"].tolist(), t["x_max"].tolist(), t["x_max_time"].tolist()
    ([2.0, 1.0], [3.0, 3.0], [0.0, 70.0])
    """
    if spec.keys:
        raise ValueError(f"a bucket table is of one source: no keys, got {spec.keys}")
    if width <= 0 or end <= start:
        raise ValueError(f"a window needs start < end and a width > 0, got {start}, {end}, {width}")
    t = records[spec.time] if len(records) else np.empty(0, np.int64)
    order = None
    if len(t) > 1 and (t[1:] < t[:-1]).any():
        order = np.argsort(t)
        t = t[order]
    nb = -(-(end - start) // width)
    bounds = np.minimum(start + width * np.arange(nb + 1, dtype=np.int64), end) * spec.scale
    edges = np.searchsorted(t, bounds)
    lo, hi = int(edges[0]), int(edges[-1])
    t = t[lo:hi]
    out = {"start": (start + width * np.arange(nb)).astype(np.float64),
           "records": np.diff(edges).astype(np.float64)}  # fmt: skip
    for f in spec.fields:
        v = np.empty(0) if not len(records) else records[f] if order is None else records[f][order]
        out.update(_runs(f, v[lo:hi], t, edges - lo, spec.thresholds.get(f)))
    return Columns(out)


def _runs(
    f: str, v: np.ndarray, t: np.ndarray, edges: np.ndarray, threshold: float | None
) -> dict[str, np.ndarray]:
    """``TABLE_STATS`` of field ``f`` for the runs ``v[edges[i]:edges[i + 1]]`` (times ``t``,
    in order)."""
    nb = len(edges) - 1
    if v.dtype.kind == "f":  # only floats have no value (NaN): integers are all counted
        valid = ~np.isnan(v)
        if not valid.all():
            kept = np.concatenate([[0], np.cumsum(valid)])
            v, t, edges = v[valid], t[valid], kept[edges]
    n = np.diff(edges)
    has = n > 0
    first = edges[:-1][has]
    res = {f"{f}_count": n.astype(np.float64)}
    total = np.zeros(nb)
    if len(v):
        exact = np.float64 if v.dtype.kind == "f" else np.int64  # an int8 must not wrap
        total[has] = np.add.reduceat(v, first, dtype=exact)
    res[f"{f}_total"] = total
    for name, ufunc in (("min", np.minimum), ("max", np.maximum)):
        best, when = np.full(nb, np.nan), np.full(nb, -1.0)
        if len(v):
            got = ufunc.reduceat(v, first)
            best[has] = got
            # the earliest record of each run that has its best value: the first of them
            hits = np.flatnonzero(v == np.repeat(got, n[has]))
            when[has] = t[hits[np.searchsorted(hits, first)]]
        res[f"{f}_{name}"] = best
        res[f"{f}_{name}_time"] = when
    over = np.zeros(nb)
    if threshold is not None and len(v):
        above = np.concatenate([[0], np.cumsum(v > threshold)])
        over = np.diff(above[edges]).astype(np.float64)
    res[f"{f}_over"] = over
    return {k: res[k] for k in (f"{f}_{x}" for x in TABLE_STATS)}


def table_columns(fields: tuple[str, ...]) -> list[str]:
    """The columns of a bucket table of ``fields``, in order."""
    return ["start", "records", *(f"{f}_{x}" for f in fields for x in TABLE_STATS)]


def merge_tables(
    tables: list[Columns], fields: tuple[str, ...], start: int, end: int, width: int
) -> Columns:
    """Every bucket of ``[start, end)`` (epoch seconds) ``width`` seconds wide, from bucket
    tables (``bucket_table``, or what this function or ``bucket_stats`` returned) of any
    sources and times put together, with the columns ``bucket_stats`` gives for a spec with
    no keys: counts, totals and over summed, min and max with the
    earliest time on a tie, mean and over_pct from them; an empty bucket has count 0, total
    0, over 0 and NaN (time -1) for the rest.

    The median and percentiles are NaN and the labels None: ranks need every value of a
    bucket, which a table no longer holds. Each table bucket must lie whole in one bucket
    here (minute tables into windows of whole minutes), and the tables must have counted
    ``over`` with the same thresholds. Totals may differ from the records' in the last bits:
    the same values are added in another order.

    >>> a = Columns(start=np.array([0.0, 60.0]), records=np.array([2.0, 0.0]),
    ...             x_count=np.array([2.0, 0.0]), x_total=np.array([4.0, 0.0]),
    ...             x_min=np.array([1.0, np.nan]), x_min_time=np.array([30.0, -1.0]),
    ...             x_max=np.array([3.0, np.nan]), x_max_time=np.array([0.0, -1.0]),
    ...             x_over=np.array([0.0, 0.0]))
    >>> m = merge_tables([a, a], ("x",), 0, 120, 120)
    >>> m["x_count"].tolist(), m["x_mean"].tolist(), m["x_max_time"].tolist()
    ([4], [2.0], [0])
    """
    if width <= 0 or end <= start:
        raise ValueError(f"a window needs start < end and a width > 0, got {start}, {end}, {width}")
    nb = -(-(end - start) // width)
    parts = [t for t in tables if len(t)]

    def column(name: str) -> np.ndarray:
        if not parts:
            return np.empty(0)
        return np.concatenate([t[name] for t in parts]).astype(np.float64, copy=False)

    begins = column("start")
    inside = np.flatnonzero((begins >= start) & (begins < end))
    b = ((begins[inside] - start) // width).astype(np.int64)

    def summed(name: str) -> np.ndarray:
        return np.bincount(b, weights=column(name)[inside], minlength=nb)

    out: dict[str, np.ndarray] = {
        "start": start + width * np.arange(nb, dtype=np.int64),
        "records": summed("records").astype(np.int64),
    }
    nan = np.full(nb, np.nan)
    for f in fields:
        n = summed(f"{f}_count").astype(np.int64)
        has = n > 0
        full = column(f"{f}_count")[inside] > 0  # table buckets with values of f
        res: dict[str, np.ndarray] = {f"{f}_count": n}
        for name, ufunc, fill in (("min", np.minimum, np.inf), ("max", np.maximum, -np.inf)):
            v = np.where(full, column(f"{f}_{name}")[inside], fill)
            best = np.full(nb, fill)
            ufunc.at(best, b, v)
            when = column(f"{f}_{name}_time")[inside][full]
            res[f"{f}_{name}_time"] = _earliest(best, b[full], v[full], when, nb)
            best[~has] = np.nan
            res[f"{f}_{name}"] = best
            res[f"{f}_{name}_label"] = np.full(nb, None, dtype=object)
        total = summed(f"{f}_total")
        res[f"{f}_total"] = total
        res[f"{f}_mean"] = np.divide(total, n, out=nan.copy(), where=has)
        for name in PERCENTILES:
            res[f"{f}_{name}"] = nan.copy()
        over = summed(f"{f}_over").astype(np.int64)
        res[f"{f}_over"] = over
        res[f"{f}_over_pct"] = np.divide(100.0 * over, n, out=nan.copy(), where=has)
        out.update((k, res[k]) for k in (f"{f}_{x}" for x in STATS))
    return Columns(out)


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
