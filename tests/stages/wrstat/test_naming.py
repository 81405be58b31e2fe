"""Finding the newest stats file per volume, in either naming, and reading the names."""

from __future__ import annotations

import calendar
from pathlib import Path

import pytest

from stages.wrstat.naming import NamingError, discover, from_name

SLASH = "\uff0f"


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def utc(*when: int) -> int:
    return calendar.timegm((*when, 0, 0, 0))


def test_old_names_give_the_volume_and_midnight_utc() -> None:
    s = from_name(Path("/x/20261101_scratch123.a1b2.c3d4.stats.gz"))
    assert s is not None
    assert (s.volume, s.mount, s.snapshot, s.date) == (
        "scratch123",
        None,
        utc(2026, 11, 1),
        "20261101",
    )


def test_new_names_give_the_mount_path_and_time_of_day() -> None:
    s = from_name(Path(f"/x/20261101-093015_{SLASH}lustre{SLASH}scratch123/stats.gz"))
    assert s is not None
    assert (s.volume, s.mount) == ("scratch123", "/lustre/scratch123")
    assert s.snapshot == utc(2026, 11, 1, 9, 30, 15)


@pytest.mark.parametrize(
    "name",
    ["20261101_scratch123.stats.gz", "2026110_scratch123.a.b.stats.gz", "20261341_v.a.b.stats.gz",
     "scratch123.stats", "20261101_v.a.b.stats"],
)  # fmt: skip
def test_other_names_are_not_stats_files(name: str) -> None:
    assert from_name(Path(name)) is None


def test_the_newest_file_of_each_volume_is_chosen_whatever_its_age(tmp_path: Path) -> None:
    touch(tmp_path / "20250101_scratch1.a.b.stats.gz")
    newest1 = touch(tmp_path / "20250301_scratch1.a.b.stats.gz")
    touch(tmp_path / f"20261001-000000_{SLASH}lustre{SLASH}scratch2" / "stats.gz")
    newest2 = touch(tmp_path / f"20261101-120000_{SLASH}lustre{SLASH}scratch2" / "stats.gz")
    touch(tmp_path / "notes.txt")
    touch(tmp_path / "20261101-120000_empty" / "other.gz")
    found = discover(tmp_path)
    assert [(s.volume, s.path) for s in found] == [("scratch1", newest1), ("scratch2", newest2)]
    # max_age_days counts back from the newest file here, not from today
    assert [s.volume for s in discover(tmp_path, max_age_days=30)] == ["scratch2"]
    assert [s.volume for s in discover(tmp_path, max_age_days=700)] == ["scratch1", "scratch2"]


def test_one_file_can_be_named_directly(tmp_path: Path) -> None:
    path = touch(tmp_path / "20250101_scratch1.a.b.stats.gz")
    assert [s.path for s in discover(path)] == [path]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p / "missing", "no such file or directory; point WRSTAT_DIR at"),
        (lambda p: touch(p / "x.gz").parent, "no wrstat stats files here"),
        (lambda p: touch(p / "stats-of-today.gz"), "cannot tell the volume and date"),
    ],
)
def test_unusable_input_says_why_and_what_to_do(tmp_path: Path, make, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(NamingError, match=message):
        discover(make(tmp_path))
