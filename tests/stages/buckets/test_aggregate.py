"""The bucket stages without sockets: parameters, windows, and what they send on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline import Columns
from pipeline.testing import run_stage
from stages.buckets.aggregate import BucketError, Buckets, instant, seconds
from stages.buckets.report import BucketReport

PARAMS = {
    "keys": ["client"],
    "time": "time",
    "fields": ["latency", "bytes"],
    "width": "1m",
    "thresholds": {"latency": 15},
    "label": "name",
}


def batch(client: str, times: list[int], latency: list[float]) -> Columns:
    n = len(times)
    return Columns(
        client=np.array([client] * n, dtype=object),
        time=np.array(times, np.int64),
        latency=np.array(latency),
        bytes=np.full(n, 100.0),
        name=np.array([b"f%d" % t for t in times]),
    )


def test_every_bucket_of_the_data_span_per_key_and_notes_passed_on() -> None:
    note = {"kind": "file", "file": "x", "lines": 3, "kept": 3, "skipped": 0, "rejected": 0}
    out = run_stage(
        Buckets,
        [batch("a", [0, 10, 200], [1.0, 30.0, 2.0]), note, batch("b", [65], [5.0])],
        params=PARAMS,
    )
    assert out[0] == note
    bucketed, *tables = out[1:]
    assert bucketed == {
        "kind": "bucketed",
        "records": 4,
        "outside": 0,
        "start": 0,
        "end": 240,
        "width": 60,
    }
    assert [t["client"][0] for t in tables] == ["a", "b"]
    a = tables[0]
    assert a["start"].tolist() == [0, 60, 120, 180]
    assert a["latency_count"].tolist() == [2, 0, 0, 1]
    assert a["latency_over"].tolist() == [1, 0, 0, 0]
    assert a["latency_max_label"][0] == b"f10"


def test_a_window_of_hours_back_from_the_end_leaves_older_records_outside() -> None:
    params = {**PARAMS, "width": 3600, "window": {"hours": 2, "end": "1970-01-01T05:00"}}
    out = run_stage(
        Buckets, [batch("a", [0, 3 * 3600 + 5, 4 * 3600], [1.0, 2.0, 3.0])], params=params
    )
    assert out[0]["outside"] == 1
    assert out[1]["start"].tolist() == [3 * 3600, 4 * 3600]
    assert out[1]["records"].tolist() == [1, 1]


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"width": "1w"}, "is not a duration"),
        ({"width": 0}, "more than 0 seconds"),
        ({"thresholds": {"size": 3}}, "are not among the fields"),
        ({"unit": "us"}, "must be s or ms"),
        ({"window": {"since": 3}}, "unknown setting"),
    ],
)
def test_parameters_it_cannot_use_say_which_and_why(params: dict[str, object], words: str) -> None:
    with pytest.raises(BucketError, match=words):
        run_stage(Buckets, [], params={**PARAMS, **params})


def test_records_without_a_named_column_are_refused_clearly() -> None:
    bad = Columns(client=np.array(["a"], dtype=object), time=np.array([1]))
    with pytest.raises(BucketError, match=r"no column\(s\) \['latency', 'bytes', 'name'\]"):
        run_stage(Buckets, [bad], params=PARAMS)


def test_durations_and_instants() -> None:
    assert (seconds("90s"), seconds("6h"), seconds(60)) == (90, 21600, 60)
    assert instant("2026-11-29", "start") == 1795910400
    assert instant("2026-11-29T01:00+01:00", "start") == 1795910400


def test_the_report_writes_every_bucket_and_checks_the_counts(tmp_path: Path) -> None:
    note = {"kind": "file", "file": "x", "lines": 4, "kept": 3, "skipped": 0, "rejected": 1}
    reject = {"kind": "reject", "file": "x", "line": 4, "reason": "no time", "raw": "zz"}
    items = run_stage(
        Buckets, [batch("a", [0, 10, 200], [1.0, 30.0, float("nan")]), note, reject], params=PARAMS
    )
    run_stage(BucketReport, items, params={"dir": str(tmp_path), "name": "latency"})
    rows = [r.split("\t") for r in (tmp_path / "latency.tsv").read_text().splitlines()]
    head = rows[0]
    first = dict(zip(head, rows[1], strict=True))
    assert first["start"] == "1970-01-01T00:00:00Z" and first["records"] == "2"
    assert first["latency_max"] == "30.0" and first["latency_max_label"] == "f10"
    assert first["latency_max_time"] == "1970-01-01T00:00:10Z"
    empty = dict(zip(head, rows[2], strict=True))
    assert empty["latency_mean"] == "-" and empty["latency_count"] == "0"
    assert len(rows) == 5  # the header and 4 minutes
    assert (tmp_path / "latency-rejects.tsv").read_text().splitlines()[1] == "x\t4\tno time\tzz"
    lost = {**note, "kept": 2, "skipped": 1}
    with pytest.raises(RuntimeError, match="2 records read but 3 bucketed"):
        run_stage(BucketReport, [*items[1:], lost, reject], params={"dir": str(tmp_path)})
