"""Aggregate diffs, named runs and reports in memory, and reports exported and imported."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from pipeline import Columns
from stages.diff.aggregate import Snapshot, diff, groups_table, users_table
from stages.diff.report import (
    Manager,
    Report,
    ReportError,
    export_report,
    import_report,
    load_snapshot,
    save_snapshot,
    to_json,
)
from stages.diff.snapfile import SnapFileError


def day1() -> Snapshot:
    return Snapshot(
        "scratch1",
        "20261101",
        groups_table([(1, "/a", 100, 1), (2, "/b", 50, 5), (3, "/c", 7, 1)]),
        users_table([(10, 1, 100, 1), (11, 2, 50, 5)]),
    )


def day2() -> Snapshot:
    return Snapshot(
        "scratch1",
        "20261102",
        groups_table([(1, "/a", 150, 2), (3, "/c", 7, 1), (4, "/d", 9, 3), (4, "/é\tx", 1, 1)]),
        users_table([(10, 1, 150, 2), (12, 4, 10, 4)]),
    )


def test_rows_that_appeared_vanished_changed_or_stayed() -> None:
    d = diff(day1(), day2())
    g = {
        (gid, base): (before, after, change, pct, status)
        for gid, base, before, after, change, pct, status in zip(
            *(d.groups[n].tolist() for n in ("gid", "base", "usage_before", "usage_after",
                                             "change", "percent", "status")),
            strict=True,
        )
    }  # fmt: skip
    assert g[(1, "/a")] == (100, 150, 50, 50.0, "changed")
    assert g[(2, "/b")] == (50, 0, -50, -100.0, "vanished")
    assert g[(3, "/c")] == (7, 7, 0, 0.0, "unchanged")
    assert g[(4, "/d")][:3] == (0, 9, 9) and math.isnan(g[(4, "/d")][3])
    assert g[(4, "/d")][4] == "appeared"
    assert (d.appeared_groups, d.vanished_groups) == ([4], [2])
    assert (d.appeared_users, d.vanished_users) == ([12], [11])
    assert d.totals() == {"usage_before": 157, "usage_after": 167, "files_before": 7,
                          "files_after": 7}  # fmt: skip


def test_named_runs_and_reports_in_memory(tmp_path: Path) -> None:
    m = Manager()
    a = m.add(day1())
    assert a == "scratch1@20261101"
    b = m.load(save_snapshot(day2(), tmp_path / "two.snap"))
    report = m.make_diff(a, b)
    assert report.id == "scratch1@20261101 vs scratch1@20261102"
    with pytest.raises(ReportError, match="exists already; drop it or name another"):
        m.make_diff(a, b)
    assert m.make_diff(a, b, "again").id == "again"
    with pytest.raises(ReportError, match="is loaded already"):
        m.add(day1())
    m.drop(a)  # frees the run; its reports stay
    assert list(m.runs) == [b] and "again" in m.reports
    with pytest.raises(ReportError, match=r"no run 'scratch1@20261101' in memory \(loaded: "):
        m.make_diff(a, b, "third")
    m.drop_report("again")
    with pytest.raises(ReportError, match="no report 'again'"):
        m.report("again")
    other = Snapshot("scratch2", "20261103", groups_table([]), users_table([]))
    m.add(other)
    with pytest.raises(ReportError, match="different volumes"):
        m.make_diff(b, "scratch2@20261103")


def test_a_snapshot_file_reads_back_as_it_was(tmp_path: Path) -> None:
    snap = day2()
    back = load_snapshot(save_snapshot(snap, tmp_path / "s.snap"))
    assert (back.volume, back.date) == (snap.volume, snap.date)
    for name in ("groups", "users"):
        a, b = getattr(snap, name), getattr(back, name)
        assert a.names == b.names
        for col in a.names:
            assert a[col].tolist() == b[col].tolist()
    with pytest.raises(SnapFileError, match="diff report"):
        import_report(tmp_path / "s.snap")


def file_figures() -> dict[str, object]:
    return {
        "counts": {"created": 2, "deleted": 1, "modified": 0, "moved": 0, "unchanged": 4},
        "lists": {"created": "created.tsv"},
        "groups": Columns(
            gid=np.array([1], np.uint32),
            **{k: np.array([v], np.int64) for k, v in (
                ("created", 2), ("created_bytes", 30), ("deleted", 1), ("deleted_bytes", 5),
                ("modified", 0), ("grown_bytes", 0), ("moved", 0))},
        ),
        "largest": Columns(path=np.array(["/a/ä", "/b"], dtype=object),
                           size=np.array([20, 10], np.int64), uid=np.array([1, 1], np.uint32),
                           gid=np.array([1, 1], np.uint32), mtime=np.array([5, 6], np.int64)),
    }  # fmt: skip


@pytest.mark.parametrize("suffix", [".json", ".rpt"])
def test_reports_export_and_import_as_json_and_binary(tmp_path: Path, suffix: str) -> None:
    r = Report("x vs y", "x", "y", aggregate=diff(day1(), day2()), files=file_figures(),
               meta={"note": "n"})  # fmt: skip
    path = export_report(r, tmp_path / f"report{suffix}")
    back = import_report(path)
    assert to_json(back) == to_json(r)
    assert json.loads(json.dumps(to_json(back)))["aggregate"]["groups"][3]["percent"] is None
    m = Manager()
    assert m.import_report(path) == "x vs y"
    with pytest.raises(ReportError, match="exists already"):
        m.import_report(path)


def test_a_damaged_report_is_refused_with_what_is_wrong(tmp_path: Path) -> None:
    r = Report("x vs y", "x", "y", aggregate=diff(day1(), day2()))
    path = export_report(r, tmp_path / "r.rpt")
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x55
    path.write_bytes(bytes(data))
    with pytest.raises(SnapFileError, match="corrupt"):
        import_report(path)
    bad = tmp_path / "r.json"
    bad.write_text('{"id": "x"}')
    with pytest.raises(ReportError, match="not a diff report"):
        import_report(bad)
