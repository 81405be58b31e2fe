"""Hour files of records and their minutes, and the state of what was read: stored, merged,
back-filled, and rotated, renamed or truncated logs noticed."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import numpy as np
import pytest

from pipeline import Columns
from stages.buckets.cache import (
    COLUMNS,
    MINUTE_FIELDS,
    CacheError,
    Hours,
    Source,
    State,
    minute_table,
)
from stages.buckets.stats import table_columns

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


def test_an_hour_file_keeps_its_minutes_beside_its_records(tmp_path: Path) -> None:
    hours = Hours(tmp_path)
    r = recs([1, 1.5, 3, 59.9], first_line=1)
    hours.update(SRC, r, through=T0)
    with np.load(hours.path(SRC, T0), allow_pickle=False) as z:
        rows, names, threshold = z["minutes"], z["minutes_columns"], z["minutes_threshold"]
    assert rows.dtype == np.float64 and rows.shape == (60, len(table_columns(MINUTE_FIELDS)))
    assert names.dtype.kind == "U" and names.tolist() == table_columns(MINUTE_FIELDS)
    assert threshold.tolist() == [15.0]
    loaded = hours.load(SRC, T0)
    assert loaded is not None and set(loaded.names) == {*COLUMNS, "name"}  # records only
    minutes = hours.minutes(SRC, T0)
    start = int(T0.timestamp())
    assert minutes is not None and minutes["records"].tolist()[:4] == [0, 2, 0, 1]
    assert minutes["latency_max_time"][1] == (start + 90) * 1000  # f1 at 1.5 minutes
    want = minute_table(loaded, start, start + 3600, 15.0)
    assert all(np.array_equal(minutes[n], want[n], equal_nan=True) for n in want.names)
    assert hours.minutes(SRC, T0 + dt.timedelta(hours=1)) is None  # never stored


def test_minutes_of_another_threshold_or_an_older_file_come_from_the_records(
    tmp_path: Path,
) -> None:
    r = Columns({**recs([1, 2, 3, 4]).to_dict(), "latency": np.array([1.0, 5.0, 16.0, 30.0])})
    Hours(tmp_path).update(SRC, r, through=T0)  # counted over 15 s
    stored = Hours(tmp_path).minutes(SRC, T0)
    other = Hours(tmp_path, threshold=4.0).minutes(SRC, T0)
    assert stored is not None and other is not None
    assert stored["latency_over"][1:5].tolist() == [0, 0, 1, 1]
    assert other["latency_over"][1:5].tolist() == [0, 1, 1, 1]
    # a file written before minutes were kept: its records only
    older = Hours(tmp_path).path(SRC, T0 + dt.timedelta(hours=1))
    np.savez_compressed(older, **recs([61, 62]).to_dict())
    old = Hours(tmp_path).minutes(SRC, T0 + dt.timedelta(hours=1))
    assert (
        old is not None
        and old["records"].sum() == 2
        and old["latency_count"][1:3].tolist() == [1, 1]
    )
    loaded = Hours(tmp_path).load(SRC, T0 + dt.timedelta(hours=1))
    assert loaded is not None and len(loaded) == 2


def test_an_hour_file_with_damaged_minutes_says_what_to_do(tmp_path: Path) -> None:
    hours = Hours(tmp_path)
    path = hours.path(SRC, T0)
    path.parent.mkdir(parents=True)
    np.savez(path, **recs([1]).to_dict(), minutes=np.zeros((3, 2)),
             minutes_columns=np.array(table_columns(MINUTE_FIELDS)),
             minutes_threshold=np.array([15.0]))  # fmt: skip
    with pytest.raises(CacheError, match=r"not \(60, .*delete it and update again"):
        hours.minutes(SRC, T0)


@pytest.mark.parametrize("new_name_first", [False, True])
def test_a_log_renamed_by_rotation_is_read_on_from_where_it_was_left(
    tmp_path: Path, new_name_first: bool
) -> None:
    log, rotated = tmp_path / "tx_cmc.log", tmp_path / "tx_cmc.log.1"
    log.write_bytes(b"line one\nline two\n")
    state = State.load(tmp_path / "cache")
    state.read_to(log, 18, 2)
    state.save()
    with log.open("ab") as f:
        f.write(b"line three\n")  # written after the update, before the rotation
    os.rename(log, rotated)
    log.write_bytes(b"a new log\n")
    again = State.load(tmp_path / "cache")
    # the order the logs are read in does not matter
    order = [(log, 10, 1), (rotated, 29, 3)]
    for path, offset, lines in order[::-1] if not new_name_first else order:
        start = again.start_of(path)
        assert start[:2] == ((18, 2) if path == rotated else (0, 0)), path
        again.read_to(path, offset, lines)
    again.save()
    saved = State.load(tmp_path / "cache")
    assert sorted(saved.logs) == [str(log), str(rotated)]  # the entry moved to its new name
    assert saved.logs[str(rotated)]["offset"] == 29 and saved.logs[str(log)]["offset"] == 10
    assert saved.start_of(rotated) == (29, 3, None) and saved.start_of(log) == (10, 1, None)
    older = tmp_path / "tx_cmc.log.2"
    os.rename(rotated, older)  # renamed again, nothing new under the old name
    assert saved.start_of(older) == (29, 3, None)
    saved.read_to(older, 29, 3)
    assert str(rotated) not in saved.logs and saved.logs[str(older)]["offset"] == 29


def test_a_new_log_that_got_a_deleted_logs_inode_is_read_from_its_start(tmp_path: Path) -> None:
    log = tmp_path / "tx_cmc.log"
    log.write_bytes(b"2026-11-29 06:00:00,001 a new log\n" * 20)
    st = log.stat()
    state = State(tmp_path / "state.json")
    # a rotation since deleted, whose inode the new log got: other first bytes
    state.logs[str(tmp_path / "tx_cmc.log.3")] = {
        "dev": st.st_dev, "inode": st.st_ino, "offset": 100, "lines": 3,
        "head": b"2026-11-25 06:00:00,001 an old log\n".hex()}  # fmt: skip
    assert state.start_of(log) == (0, 0, None)
    del state.logs[str(tmp_path / "tx_cmc.log.3")]["head"]  # kept before first bytes were
    assert state.start_of(log) == (100, 3, None)
