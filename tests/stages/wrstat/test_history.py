"""The usage history in SQLite (stages.wrstat.history)."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

import pytest

from stages.wrstat.history import (
    DirectoryUsage,
    GroupUsage,
    HistoryError,
    Snapshot,
    SqliteHistory,
    UserUsage,
)

DAY1, DAY2 = dt.date(2026, 11, 1), dt.date(2026, 11, 2)


def snapshot(day: dt.date, used: int, group_name: str = "hgi") -> Snapshot:
    return Snapshot(
        day,
        groups=[
            GroupUsage(
                "scratch117",
                1313,
                group_name,
                "Smith",
                "/lustre/scratch117/hgi",
                used,
                10**12,
                40,
                1.5,
                1,
            ),
            GroupUsage(
                "scratch117", 1314, "team", "-", "/lustre/scratch117/team", 7, None, 1, 0.0, 1
            ),
        ],
        users=[
            UserUsage("scratch117", 5678, "jdoe", 1313, group_name, used, 40, 1.5),
            UserUsage("scratch118", 5678, "jdoe", 1313, group_name, 3, 1, 9.0),
        ],
        directories=[
            DirectoryUsage(
                "scratch117",
                "/lustre/scratch117/hgi",
                f"sub{day.day}",
                1313,
                group_name,
                used,
                40,
                1.5,
                {"bam": used // 2, "other": used // 2},
            ),
        ],
    )


def test_a_snapshot_is_kept_once_however_often_it_is_recorded(tmp_path: Path) -> None:
    h = SqliteHistory(tmp_path / "history.sqlite")
    first = h.record(snapshot(DAY1, 100))
    assert (first.usage_rows, first.user_rows, first.directories) == (2, 2, 1)
    again = h.record(snapshot(DAY1, 100))
    assert (again.usage_rows, again.user_rows) == (0, 0)
    h.record(snapshot(DAY2, 150))
    rows = h.group_history("hgi")
    assert [(r["snapshot"], r["used"], r["quota"], r["pi"], r["warning"]) for r in rows] == [
        ("2026-11-01", 100, 10**12, "Smith", "OK"),
        ("2026-11-02", 150, 10**12, "Smith", "OK"),
    ]
    assert h.group_history(1314)[0]["quota"] is None
    assert h.group_history("hgi", volume="scratch118") == []
    assert sorted(h.recent(DAY2, 5)) == [("scratch117", "/lustre/scratch117/hgi", 1313,
                                          "2026-11-01", 100),
                                         ("scratch117", "/lustre/scratch117/team", 1314,
                                          "2026-11-01", 7)]  # fmt: skip
    h.close()


def test_the_directory_breakdown_is_the_latest_one(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite"
    h = SqliteHistory(path)
    h.record(snapshot(DAY1, 100))
    h.record(snapshot(DAY2, 150))
    h.close()
    db = sqlite3.connect(path)
    assert db.execute("SELECT path, used FROM directory").fetchall() == [("sub2", 150)]
    sizes = db.execute(
        "SELECT t.name, s.used FROM file_size s JOIN filetype t ON t.id = s.filetype_id "
        "ORDER BY t.name"
    ).fetchall()
    assert sizes == [("bam", 75), ("other", 75)]
    db.close()


def test_a_renamed_group_keeps_its_history_under_the_new_name(tmp_path: Path) -> None:
    h = SqliteHistory(tmp_path / "h.sqlite")
    h.record(snapshot(DAY1, 100, "hgi"))
    h.record(snapshot(DAY2, 150, "hgi-new"))
    assert [r["used"] for r in h.group_history("hgi-new")] == [100, 150]
    assert [r["used"] for r in h.group_history(1313)] == [100, 150]
    h.close()


def test_a_failed_snapshot_leaves_nothing_half_written(tmp_path: Path) -> None:
    h = SqliteHistory(tmp_path / "h.sqlite")
    h.record(snapshot(DAY1, 100))
    bad = snapshot(DAY2, 150)
    bad.users = [*bad.users, UserUsage("scratch117", 1, "x", 999, "ghost", "lots", 1, 0.0)]  # type: ignore[arg-type]
    with pytest.raises(sqlite3.IntegrityError):
        h.record(bad)
    assert [r["snapshot"] for r in h.group_history("hgi")] == ["2026-11-01"]
    assert h.db.execute("SELECT path FROM directory").fetchall() == [("sub1",)]
    h.close()


def test_a_file_that_is_not_a_database_says_what_to_do(tmp_path: Path) -> None:
    f = tmp_path / "h.sqlite"
    f.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(HistoryError, match=r"cannot use .* as the usage history.*set HISTORY_DB"):
        SqliteHistory(f)
