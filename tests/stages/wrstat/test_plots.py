"""Pictures of the groups closest to full (stages.wrstat.plots)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
from matplotlib import image

from stages.wrstat.plots import GroupPicture, closest_to_full, draw

DAYS = [dt.date(2026, 11, d) for d in (1, 2, 3, 4, 5)]
TiB = 2**40


def picture(group: str, used_last: float, quota: float | None, slope: float) -> GroupPicture:
    used = [used_last - slope * (4 - i) for i in range(5)]
    return GroupPicture("scratch117", group, "/lustre/scratch117/x", DAYS, used, quota, slope,
                        warning="Not OK")  # fmt: skip


def test_a_picture_is_a_png_with_the_quota_line_drawn(tmp_path: Path) -> None:
    path = draw(picture("hgi/odd name", 80 * TiB, 100 * TiB, 3 * TiB), tmp_path)
    assert path.name == "usage-scratch117-hgi_odd_name-x-20261105.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = image.imread(path)
    assert pixels.shape[:2] == (450, 800)
    red = (pixels[..., 0] > 0.6) & (pixels[..., 1] < 0.35) & (pixels[..., 2] < 0.3)
    rows = np.flatnonzero(red.sum(axis=1) > 300)  # a horizontal red line across the plot
    assert len(rows) >= 1
    assert not list(tmp_path.glob("*.tmp"))


def test_no_quota_draws_no_quota_line(tmp_path: Path) -> None:
    pixels = image.imread(draw(picture("team", 5 * TiB, None, 0.0), tmp_path))
    red = (pixels[..., 0] > 0.6) & (pixels[..., 1] < 0.35) & (pixels[..., 2] < 0.3)
    assert not (red.sum(axis=1) > 300).any()


def test_the_groups_closest_to_full_come_first() -> None:
    pics = [
        picture("calm", 10 * TiB, 100 * TiB, 0.0),
        picture("filling", 50 * TiB, 100 * TiB, 10 * TiB),  # 120% in 7 days
        picture("nearly", 95 * TiB, 100 * TiB, 0.0),
        picture("unlimited", 500 * TiB, None, 50 * TiB),
    ]
    assert [p.group for p in closest_to_full(pics, top=2)] == ["filling", "nearly"]
