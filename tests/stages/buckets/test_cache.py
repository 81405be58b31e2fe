"""Hour files of records and the state of what was read: stored, merged, back-filled, and
rotated or truncated logs noticed."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import numpy as np
import pytest

from pipeline import Columns
from stages.buckets.cache import CacheError, Hours, Source, State

SRC = Source("cmc", "px1", "tx")
T0 = dt.datetime(2026, 11, 29, 6, tzinfo=dt.UTC)


def recs(minutes: list[float], first_line: int = 1) -> Columns:
    ms = (int(T0.timestamp()) + np.array(minutes) * 60).astype(np.int64) * 1000
    n = len(minutes)
    return Columns(time=ms, latency=np.arange(n, dtype=np.float64), bytes=np.full(n, 10),
                   error=np.zeros(n, np.int8), line=np.arange(first_line, first_line + n),
                   name=np.array([b"f%d" % i for i in range(n)]))  # fmt: skip


def test_records_go_to_their_hours_and_come_back_whole(tmp_path: Path) -> None:
    hours = Hours(tmp_path)
    written = hours.update(SRC, recs([1, 59, 61, 185]), through=T0 + dt.timedelta(hours=4))
    assert written == 4  # hours 6, 7 and 9 with records; 8 back-filled empty
    assert hours.path(SRC, T0).relative_to(tmp_path).as_posix() == "cmc/20261129/tx/px1_06.npz"
    got, missing = hours.window(SRC, T0, T0 + dt.timedelta(hours=5))
    assert len(got) == 4 and missing == [T0 + dt.timedelta(hours=4)]
    assert got["name"].tolist() == [b"f0", b"f1", b"f2", b"f3"]
    empty = hours.load(SRC, T0 + dt.timedelta(hours=2))
    assert empty is not None and len(empty) == 0
    assert list(hours.sources()) == [SRC]


def test_an_update_done_twice_adds_nothing_and_later_records_join_their_hour(
    tmp_path: Path,
) -> None:
    hours = Hours(tmp_path)
    hours.update(SRC, recs([1, 2]), through=T0)
    hours.update(SRC, recs([1, 2]), through=T0)  # state lost after the hours were stored
    hours.update(SRC, recs([30, 3], first_line=3), through=T0)
    got = hours.load(SRC, T0)
    assert got is not None
    assert got["line"].tolist() == [1, 2, 4, 3]  # in time order
    longer = Columns({**recs([40], 5).to_dict(), "name": np.array([b"a-much-longer-name"])})
    hours.update(SRC, longer, through=T0)
    got = hours.load(SRC, T0)
    assert got is not None and got["name"][-1] == b"a-much-longer-name"


def test_a_damaged_hour_file_says_what_to_do(tmp_path: Path) -> None:
    hours = Hours(tmp_path)
    hours.update(SRC, recs([1]), through=T0)
    hours.path(SRC, T0).write_bytes(b"not an archive")
    with pytest.raises(CacheError, match="delete it and update again"):
        hours.load(SRC, T0)


def test_the_state_notices_rotated_and_truncated_logs(tmp_path: Path) -> None:
    log = tmp_path / "tx_cmc.log"
    log.write_bytes(b"x" * 100)
    state = State.load(tmp_path / "cache")
    assert state.start_of(log) == (0, 0, None)
    state.read_to(log, 100, 3)
    state.updated[SRC.key] = "2026-11-29T07:00:00Z"
    state.save()
    again = State.load(tmp_path / "cache")
    assert again.start_of(log) == (100, 3, None) and again.updated == state.updated
    log.write_bytes(b"x" * 10)  # truncated in place
    assert again.start_of(log)[2] is not None and "truncated" in again.start_of(log)[2]
    os.rename(log, tmp_path / "tx_cmc.log.1")
    log.write_bytes(b"y" * 200)  # a new file under the old name
    assert again.start_of(log)[:2] == (0, 0) and "rotated" in str(again.start_of(log)[2])
    (tmp_path / "cache" / "state.json").write_text("{not json")
    with pytest.raises(CacheError, match="delete it to read every log again"):
        State.load(tmp_path / "cache")
