"""What a graph reads: a client's minute tables from every tx machine's cached hours, the
hours nothing covers, and the name of the record it shows."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np

from pipeline import Columns
from stages.buckets.cache import Hours, Source
from stages.buckets.stats import Spec, bucket_stats, merge_tables
from stages.buckets.view import minutes_of

T0 = dt.datetime(2026, 11, 29, 6, tzinfo=dt.UTC)
S0 = int(T0.timestamp())
FIELDS = ("latency", "bytes", "error")


def recs(seed: int, n: int = 500, hours: int = 3) -> Columns:
    rng = np.random.default_rng(seed)
    t = np.sort(S0 * 1000 + rng.integers(0, hours * 3_600_000, n))
    names = np.array([b"f%d-%d" % (seed, i) for i in range(n)])
    return Columns(time=t, latency=np.round(rng.exponential(10, n), 1),
                   bytes=rng.integers(0, 1000, n), error=(rng.random(n) < 0.1).astype(np.int8),
                   line=np.arange(1, n + 1), name=names)  # fmt: skip


def test_a_clients_minutes_are_its_tx_hours_on_every_machine(tmp_path: Path) -> None:
    hours = Hours(tmp_path)
    px1, px2 = recs(1), recs(2, hours=2)  # px2 has nothing cached for the third hour
    hours.update(Source("cmc", "px1", "tx"), px1, through=T0 + dt.timedelta(hours=3))
    hours.update(Source("cmc", "px2", "tx"), px2, through=T0 + dt.timedelta(hours=2))
    hours.update(Source("cmc", "px1", "rx"), recs(3), through=T0)  # not graphed: rx
    hours.update(Source("nws", "px1", "tx"), recs(4), through=T0)  # not graphed: another client
    start, end = S0 + 600, S0 + 4 * 3600  # a fourth hour nobody has
    view = minutes_of(tmp_path, "cmc", start, end, None, "UTC")
    assert view.missing == [T0 + dt.timedelta(hours=3)]  # the third: px1 has it
    got = merge_tables(view.tables, FIELDS, start, end, 60)
    both = Columns({n: np.concatenate([px1[n], px2[n]]) for n in ("time", *FIELDS)})
    spec = Spec((), "time", FIELDS, {"latency": 15.0}, None, "ms")
    want = bucket_stats(both, spec, start, end, 60)
    for n in ("records", "latency_count", "latency_over", "bytes_total", "error_total"):
        assert got[n].tolist() == want[n].tolist(), n
    assert np.allclose(got["latency_mean"], want["latency_mean"], rtol=1e-12, equal_nan=True)
    whole = merge_tables(view.tables, FIELDS, start, end, end - start)
    latency = np.where(both["time"] >= start * 1000, both["latency"], -1)
    tops = np.flatnonzero(latency == latency.max())
    top = tops[np.argmin(both["time"][tops])]  # the earliest of the largest
    names = np.concatenate([px1["name"], px2["name"]])
    assert view.name(int(whole["latency_max_time"][0]), whole["latency_max"][0]) == names[top]
    assert view.name(int(whole["latency_max_time"][0]), -1.0) is None


def test_a_graph_asking_another_threshold_counts_it(tmp_path: Path) -> None:
    r = recs(5)
    Hours(tmp_path).update(Source("cmc", "px1", "tx"), r, through=T0)  # stored: over 15 s
    view = minutes_of(tmp_path, "cmc", S0, S0 + 3 * 3600, None, "UTC", threshold=5.0)
    got = merge_tables(view.tables, FIELDS, S0, S0 + 3 * 3600, 3 * 3600)
    assert got["latency_over"][0] == np.count_nonzero(r["latency"] > 5.0) > 0
    assert view.missing == []
