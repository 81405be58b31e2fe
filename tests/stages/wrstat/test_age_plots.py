"""Pictures of age profiles: the largest groups of each volume and the rest together."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from stages.wrstat.age_plots import OTHERS, draw, file_name, pictures
from stages.wrstat.enrich import AgeFigures
from stages.wrstat.layout import N_AGES

DATE = dt.date(2026, 11, 1)


def profile(volume: str, gid: int, usage: int) -> AgeFigures:
    """``usage`` in the first class by mtime and the last by atime; no files."""
    m = (usage,) + (0,) * (N_AGES - 1)
    a = (0,) * (N_AGES - 1) + (usage,)
    return AgeFigures(volume, gid, m, a, (0,) * N_AGES, (0,) * N_AGES)


def test_each_volume_shows_its_largest_groups_and_the_rest_together() -> None:
    ages = [profile("v1", g, 100 * g) for g in range(1, 6)] + [profile("v2", 9, 7)]
    got = pictures(ages, DATE, lambda gid: f"g{gid}", top=3)
    assert [p.volume for p in got] == ["v1", "v2"]
    v1, v2 = got
    assert v1.groups == ["g5", "g4", "g3", OTHERS]
    assert [row[0] for row in v1.by_mtime] == [500, 400, 300, 100 + 200]
    assert [row[-1] for row in v1.by_atime] == [500, 400, 300, 300]
    assert v2.groups == ["g9"]  # nothing left over: no "other groups"
    assert file_name(v1) == "ages-v1-20261101.png"


def test_a_picture_is_written_as_a_png(tmp_path: Path) -> None:
    ages = [profile("scratch117", g, 3 * 2**40 * g) for g in range(1, 9)]
    (p,) = pictures(ages, DATE, str)
    path = draw(p, tmp_path)
    assert path == tmp_path / "ages-scratch117-20261101.png"
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind
