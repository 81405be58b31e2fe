"""Bucket statistics against a reference that sorts each bucket's values in plain Python."""

from __future__ import annotations

import math
import random
from collections import defaultdict
from typing import Any

import numpy as np
import pytest

from pipeline import Columns
from stages.buckets.stats import (
    PERCENTILES,
    STATS,
    Spec,
    bucket_stats,
    bucket_table,
    merge_tables,
    table_columns,
)

SPEC = Spec(("client", "machine"), "time", ("latency", "bytes"), {"latency": 15.0}, "name", "ms")


def records(n: int, seed: int) -> Columns:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        latency = (
            rng.choice([float("nan"), 15.0, 0.0])
            if rng.random() < 0.1
            else round(rng.expovariate(0.2), 1)
        )
        rows.append(
            (
                rng.choice(["cmc", "nws", "dwd"]),
                rng.choice(["px1", "px2"]),
                rng.randrange(0, 3 * 3600 * 1000),
                latency,
                float(rng.randrange(0, 5000)),
                f"f{i}",
            )
        )
    cols = list(zip(*rows, strict=True))
    return Columns(
        client=np.array(cols[0], dtype=object),
        machine=np.array(cols[1], dtype=object),
        time=np.array(cols[2], np.int64),
        latency=np.array(cols[3]),
        bytes=np.array(cols[4]),
        name=np.array(cols[5], dtype=object),
    )


def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between the two nearest ranks (numpy's default method)."""
    h = (len(values) - 1) * q / 100
    lo = math.floor(h)
    hi = min(lo + 1, len(values) - 1)
    return values[lo] + (h - lo) * (values[hi] - values[lo])


def reference(
    r: Columns, spec: Spec, start: int, end: int, width: int
) -> dict[tuple[Any, ...], dict[str, Any]]:
    """(client, machine, bucket start, field) -> every statistic, one record at a time."""
    groups: dict[tuple[Any, ...], list[tuple[float, int, str]]] = defaultdict(list)
    keys = set()
    for i in range(len(r)):
        key = (r["client"][i], r["machine"][i])
        t = int(r["time"][i])
        if not start * 1000 <= t < end * 1000:
            continue
        keys.add(key)
        b = start + (t // 1000 - start) // width * width
        for f in spec.fields:
            v = float(r[f][i])
            if not math.isnan(v):
                groups[(*key, b, f)].append((v, t, r["name"][i]))
    out = {}
    for key in keys:
        for b in range(start, end, width):
            for f in spec.fields:
                vals = sorted(groups.get((*key, b, f), []))  # by value, then time
                xs = [v for v, _, _ in vals]
                row: dict[str, Any] = {"count": len(xs), "total": sum(xs)}
                thr = spec.thresholds.get(f)
                row["over"] = sum(1 for x in xs if thr is not None and x > thr)
                if xs:
                    big = next(e for e in vals if e[0] == xs[-1])  # earliest of the largest
                    row.update(
                        min=xs[0],
                        min_time=vals[0][1],
                        min_label=vals[0][2],
                        max=xs[-1],
                        max_time=big[1],
                        max_label=big[2],
                        mean=sum(xs) / len(xs),
                        median=percentile(xs, 50),
                        p95=percentile(xs, 95),
                        p99=percentile(xs, 99),
                        over_pct=100 * row["over"] / len(xs),
                    )
                out[(*key, b, f)] = row
    return out


@pytest.mark.parametrize(
    ("width", "start", "end"),
    [(60, 0, 3 * 3600), (3600, 0, 3 * 3600), (7, 600, 4000), (86400, 0, 86400)],
)
def test_every_statistic_of_every_bucket_as_the_reference_has_it(
    width: int, start: int, end: int
) -> None:
    r = records(5000, seed=width)
    got = bucket_stats(r, SPEC, start, end, width)
    want = reference(r, SPEC, start, end, width)
    assert len(got) == len(want) // len(SPEC.fields)  # every bucket of every key, empty ones too
    cols = {n: got[n].tolist() for n in got.names}
    for i in range(len(got)):
        for f in SPEC.fields:
            ref = want[(cols["client"][i], cols["machine"][i], cols["start"][i], f)]
            for stat in STATS:
                value = cols[f"{f}_{stat}"][i]
                if stat not in ref:  # an empty bucket
                    assert value in (None, -1) or math.isnan(value), (stat, value)
                elif isinstance(ref[stat], float):
                    assert value == pytest.approx(ref[stat], rel=1e-12, abs=1e-9), (stat, i)
                else:
                    assert value == ref[stat], (stat, i)


def test_percentiles_are_numpys_linear_ones() -> None:
    rng = np.random.default_rng(1)
    values = rng.exponential(5, 1001)
    r = Columns(time=np.zeros(1001, np.int64), x=values)
    s = bucket_stats(r, Spec((), "time", ("x",)), 0, 60, 60)
    for name, q in (("median", 50), ("p95", 95), ("p99", 99)):
        assert s[f"x_{name}"][0] == np.percentile(values, q)


def test_coarser_windows_from_the_same_records_are_exact() -> None:
    r = records(3000, seed=9)
    minutes = bucket_stats(r, SPEC, 0, 3600, 60)
    hour = bucket_stats(r, SPEC, 0, 3600, 3600)
    for i in range(len(hour)):
        mine = (minutes["client"] == hour["client"][i]) & (minutes["machine"] == hour["machine"][i])
        assert minutes["latency_count"][mine].sum() == hour["latency_count"][i]
        assert minutes["latency_over"][mine].sum() == hour["latency_over"][i]
        assert np.nanmax(minutes["latency_max"][mine]) == hour["latency_max"][i]


def test_records_from_two_replicas_put_together_give_the_stats_of_all() -> None:
    r = records(4000, seed=3)
    half = np.arange(len(r)) % 2 == 0
    both = Columns({n: np.concatenate([r.select(half)[n], r.select(~half)[n]]) for n in r.names})
    a, b = bucket_stats(r, SPEC, 0, 3 * 3600, 300), bucket_stats(both, SPEC, 0, 3 * 3600, 300)
    for n in a.names:
        assert a[n].tolist() == b[n].tolist() or np.allclose(
            a[n].astype(float), b[n].astype(float), equal_nan=True
        )


def test_keys_asked_for_get_their_buckets_even_with_no_records() -> None:
    r = records(100, seed=4)
    s = bucket_stats(r, SPEC, 0, 600, 60, keys=[("nobody", "px9"), ("cmc", "px1")])
    assert s["client"].tolist()[:10] == ["nobody"] * 10
    assert s["latency_count"][:10].tolist() == [0] * 10
    assert s["latency_total"][:10].tolist() == [0.0] * 10


def test_a_window_needs_a_width_and_an_end_after_its_start() -> None:
    with pytest.raises(ValueError, match="start < end and a width > 0"):
        bucket_stats(records(1, 1), SPEC, 60, 60, 60)


# Minute tables merged: what a graph reads instead of the records.
FIELDS = ("latency", "bytes", "error")
ONE = Spec((), "time", FIELDS, {"latency": 15.0}, None, "ms")
H0 = 1_795_910_400  # 2026-11-29 00:00 UTC


def machine(seed: int, rx: bool = False) -> Columns:
    """Three hours of one log's records, time-sorted as an hour file keeps them: ties of
    value and of time (and both), NaN latencies (all of them on rx), a quiet stretch of
    empty minutes, and bursts of over a hundred errors a minute (an int8 column)."""
    rng = np.random.default_rng(seed)
    n = 6000
    t = H0 * 1000 + rng.integers(0, 3 * 3_600_000, n)
    t[:200] = (H0 + 7 * 60) * 1000 + rng.integers(0, 60_000, 200)  # a burst in minute 7
    t[1::7] = t[::7][: len(t[1::7])]  # the same ms twice
    quiet = (t >= (H0 + 4800) * 1000) & (t < (H0 + 5700) * 1000)  # minutes 80-95: empty
    t = np.sort(t[~quiet])
    k = len(t)
    latency = np.round(rng.exponential(8.0, k), 1)  # rounded: values tie often
    latency[rng.random(k) < 0.05] = np.nan
    latency[rng.random(k) < 0.05] = 15.0  # at the threshold: not over it
    if rx:
        latency[:] = np.nan
    error = (rng.random(k) < 0.02).astype(np.int8)
    error[(t // 60_000) % 60 == 7] = 1  # every record of minute 7 of each hour
    nbytes = rng.integers(0, 5000, k).astype(np.int64)
    nbytes[::11] = 4999  # the largest, many times
    return Columns(time=t, latency=latency, bytes=nbytes, error=error)


def hour_tables(r: Columns) -> list[Columns]:
    """The tables of each hour of ``r``, as the cache keeps them."""
    return [bucket_table(r, ONE, h, h + 3600, 60) for h in range(H0, H0 + 3 * 3600, 3600)]


def assert_same(got: Columns, want: Columns) -> None:
    """``got`` (merged tables) as ``want`` (``bucket_stats`` of the records, which sorts each
    bucket's values), but for the ranks, which tables cannot give (NaN)."""
    assert got.names == want.names
    for n in want.names:
        a, b = got[n], want[n]
        if n.endswith(tuple(f"_{q}" for q in PERCENTILES)):
            assert np.isnan(a).all(), n
        elif n.endswith("_label"):
            assert a.tolist() == b.tolist() == [None] * len(b), n
        elif n.endswith(("_total", "_mean", "_over_pct")):
            # the same values added in another order (per minute, then minutes, machines):
            # equal to the last few bits, not bit for bit
            assert np.allclose(a, b, rtol=1e-12, atol=0, equal_nan=True), n
        else:
            assert a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True), n


@pytest.mark.parametrize(
    ("start", "end", "width"),
    [
        (H0, H0 + 3 * 3600, 60),  # whole hours, per minute
        (H0 + 17 * 60, H0 + 2 * 3600 + 43 * 60, 60),  # not aligned to hours
        (H0 + 17 * 60, H0 + 2 * 3600 + 43 * 60, 300),  # the last bucket cut short
        (H0 + 17 * 60, H0 + 2 * 3600 + 43 * 60, 2 * 3600 + 26 * 60),  # the window at once
        (H0 - 3600, H0 + 4 * 3600, 3600),  # hours with no table at either end
    ],
)
def test_merged_tables_give_the_counted_figures_of_the_records(
    start: int, end: int, width: int
) -> None:
    machines = [machine(1), machine(2), machine(3, rx=True)]
    # the third machine's last hour not cached yet: a table of its records past a minute
    # that is not an hour's, out of time order, as the logs' tail gives them
    cut = H0 + 2 * 3600 + 20 * 60
    late = machines[2].select(machines[2]["time"] >= cut * 1000)
    late = late.select(np.random.default_rng(5).permutation(len(late)))
    tables = [*hour_tables(machines[0]), *hour_tables(machines[1])]
    tables += hour_tables(machines[2].select(machines[2]["time"] < cut * 1000))[:3]
    tables.append(bucket_table(late, ONE, cut, H0 + 3 * 3600, 60))
    everything = Columns({n: np.concatenate([m[n] for m in machines]) for n in machines[0].names})

    got = merge_tables(tables, FIELDS, start, end, width)
    want = bucket_stats(everything, ONE, start, end, width)
    assert want["records"].sum() > 0
    assert len(want) == 1 or (want["latency_count"] == 0).any()  # empty buckets too
    assert_same(got, want)


def test_a_window_from_merged_minutes_is_the_window_from_the_tables() -> None:
    tables = hour_tables(machine(7)) + hour_tables(machine(8))
    start, end = H0 + 600, H0 + 3 * 3600 - 1200
    minutes = merge_tables(tables, FIELDS, start, end, 60)
    once = merge_tables(tables, FIELDS, start, end, end - start)
    twice = merge_tables([minutes], FIELDS, start, end, end - start)
    for n in once.names:
        assert once[n].tolist() == twice[n].tolist() or np.allclose(
            once[n].astype(float), twice[n].astype(float), rtol=1e-12, equal_nan=True
        ), n
    assert np.isnan(once["latency_p95"]).all()  # no ranks from tables


def test_a_table_counts_what_the_records_hold_in_order_or_not() -> None:
    r = machine(4)
    table = bucket_table(r, ONE, H0, H0 + 3600, 60)
    assert list(table.names) == table_columns(FIELDS)
    assert all(table[n].dtype == np.float64 for n in table.names)
    want = bucket_stats(r, ONE, H0, H0 + 3600, 60)
    assert table["error_total"][7] == want["error_total"][7] > 127  # no int8 wrap-around
    shuffled = r.select(np.random.default_rng(0).permutation(len(r)))
    again = bucket_table(shuffled, ONE, H0, H0 + 3600, 60)
    for n in table.names:
        expected = want[n].astype(np.float64)
        if n.endswith("_total"):  # added pairwise per minute: equal to the last bits
            assert np.allclose(table[n], expected, rtol=1e-12, atol=0), n
            assert np.allclose(again[n], expected, rtol=1e-12, atol=0), n
        else:  # min and max times too: the earliest on a tie, sorted or not
            assert np.array_equal(table[n], expected, equal_nan=True), n
            assert np.array_equal(again[n], expected, equal_nan=True), n
    empty = bucket_table(r.select(np.zeros(len(r), bool)), ONE, H0, H0 + 3600, 60)
    assert empty["records"].sum() == 0 and np.isnan(empty["latency_max"]).all()
    assert (empty["latency_max_time"] == -1).all()


def test_a_table_is_of_one_source_and_a_window_needs_an_end() -> None:
    with pytest.raises(ValueError, match="no keys"):
        bucket_table(records(10, 1), SPEC, 0, 60, 60)
    with pytest.raises(ValueError, match="start < end"):
        merge_tables([], FIELDS, 60, 60, 60)
    nothing = merge_tables([], FIELDS, 0, 180, 60)
    assert nothing["latency_count"].tolist() == [0, 0, 0]
    assert np.isnan(nothing["latency_mean"]).all()
