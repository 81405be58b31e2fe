"""The usage history in a real MariaDB started by the test (stages.wrstat.history_mysql):
the same rows and rules as the SQLite store."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pymysql
import pytest

from stages.wrstat.history import SCHEMA_VERSION, HistoryError, Kept, Recorded, SqliteHistory
from stages.wrstat.history_mysql import MysqlHistory, Target, _values
from stages.wrstat.spool import Spool, keep, replay
from tests.brokers import HOST, free_port
from tests.databases import MariaDB
from tests.stages.wrstat.test_history import DAY1, DAY2, snapshot


@pytest.fixture
def mariadb(tmp_path: Path) -> Iterator[MariaDB]:
    with MariaDB(tmp_path / "mariadb") as server:
        yield server


def test_mariadb_keeps_the_same_history_as_sqlite(mariadb: MariaDB, tmp_path: Path) -> None:
    url = mariadb.database("usage")
    lite = SqliteHistory(tmp_path / "h.sqlite")

    kept: list[object] = []

    async def scenario() -> tuple[list[object], list[object], list[tuple[int, int]]]:
        store = await MysqlHistory.open(url)
        try:
            counts = []
            for day, used in ((DAY1, 100), (DAY1, 100), (DAY2, 150)):  # DAY1 twice
                name = "hgi" if day == DAY1 else "hgi-new"
                got = await store.record(snapshot(day, used, name))
                counts.append((got.usage_rows, got.user_rows))
                lite.record(snapshot(day, used, name))
            by_name = await store.group_history("hgi-new")
            by_gid = await store.group_history(1313, volume="scratch117")
            for volume, day in (("scratch117", DAY2), ("scratch117", DAY1), ("scratch118", DAY2)):
                kept.append(await store.previous(volume, day))
        finally:
            await store.close()
        return list(by_name), list(by_gid), counts

    by_name, by_gid, counts = asyncio.run(scenario())
    assert counts == [(2, 2), (0, 0), (2, 2)]  # the repeated snapshot added nothing
    assert by_name == lite.group_history("hgi-new") == by_gid
    assert [r["used"] for r in by_name] == [100, 150]  # type: ignore[index]
    # what a diff compares with: the volume's last snapshot before a date, from either store
    assert kept == [lite.previous("scratch117", DAY2), None, lite.previous("scratch118", DAY2)]
    assert kept[0] == Kept("2026-11-01", [(1313, "/lustre/scratch117/hgi", 100, 40),
                                          (1314, "/lustre/scratch117/team", 7, 1)],
                           [(5678, 1313, 100, 40)])  # fmt: skip
    assert kept[2] == Kept("2026-11-01", [], [(5678, 1313, 3, 1)])
    lite.close()
    conn = pymysql.connect(host=HOST, port=mariadb.port, user="root", password="", database="usage")
    with conn.cursor() as cur:
        cur.execute("SELECT path, used FROM directory")
        assert cur.fetchall() == (("sub2", 150),)  # the breakdown is the latest one
        cur.execute("SELECT COUNT(*) FROM file_size")
        assert cur.fetchone() == (2,)
    conn.close()


def test_an_unreachable_server_says_so_clearly() -> None:
    port = free_port()  # nothing listens there

    async def attempt() -> None:
        await MysqlHistory.open(f"mysql://root@{HOST}:{port}/usage")

    with pytest.raises(HistoryError) as err:
        asyncio.run(attempt())
    assert f"cannot reach the history database root@{HOST}:{port}/usage" in str(err.value)
    assert "is the server up" in str(err.value)


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("mysql://u:secret@db/usage", "holds a password; put it in $HISTORY_DB_PASSWORD"),
        ("postgres://db/usage", "is not a mysql://USER@HOST[:PORT]/DATABASE URL"),
        ("mysql://u@db", "names no database"),
    ],
)
def test_a_bad_url_says_what_to_write(url: str, words: str) -> None:
    with pytest.raises(HistoryError) as err:
        Target.parse(url)
    assert words in str(err.value)


def test_the_password_comes_from_the_environment_or_a_file(
    mariadb: MariaDB, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = mariadb.database("secured")
    conn = pymysql.connect(host=HOST, port=mariadb.port, user="root", password="")
    with conn.cursor() as cur:
        cur.execute("CREATE USER 'reporter'@'%' IDENTIFIED BY 's3cret'")
        cur.execute("GRANT ALL ON secured.* TO 'reporter'@'%'")
    conn.close()
    url = url.replace("root@", "reporter@")
    secret = tmp_path / "password"
    secret.write_text("s3cret\n")
    monkeypatch.setenv("HISTORY_DB_PASSWORD_FILE", str(secret))

    async def use() -> int:
        store = await MysqlHistory.open(url)
        try:
            return (await store.record(snapshot(DAY1, 5))).usage_rows
        finally:
            await store.close()

    assert asyncio.run(use()) == 2
    monkeypatch.delenv("HISTORY_DB_PASSWORD_FILE")
    monkeypatch.setenv("HISTORY_DB_PASSWORD", "wrong")
    with pytest.raises(HistoryError, match="is the server up, and the user and password right"):
        asyncio.run(use())


def test_a_server_that_stops_mid_run_loses_no_row(mariadb: MariaDB, tmp_path: Path) -> None:
    url = mariadb.database("usage")
    spool = Spool(tmp_path / "history.spool")

    async def run_one(day: date, used: int) -> Recorded | None:
        store = await MysqlHistory.open(url)
        try:
            if day == DAY2:
                mariadb.stop()  # the server goes away between the connection and the writes
            return await keep(store, snapshot(day, used), spool, attempts=3, backoff=0.1)
        finally:
            await store.close()

    assert asyncio.run(run_one(DAY1, 100)) is not None
    assert asyncio.run(run_one(DAY2, 150)) is None  # retried, then spooled
    assert [s.date for s in spool.pending()] == [DAY2]
    mariadb.start()  # the next run: the spool is replayed first

    async def next_run() -> list[dict[str, object]]:
        store = await MysqlHistory.open(url)
        try:
            assert await replay(store, spool) == 1
            assert await replay(store, spool) == 0  # emptied
            return await store.group_history("hgi")
        finally:
            await store.close()

    rows = asyncio.run(next_run())
    assert [(r["snapshot"], r["used"]) for r in rows] == [("2026-11-01", 100), ("2026-11-02", 150)]
    assert not spool.path.exists()


def test_a_spooled_snapshot_reads_back_as_it_was(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.spool")
    snap = snapshot(DAY1, 123)
    spool.add(snap)
    with spool.path.open("a") as f:
        f.write('{"date": "2026-11-0')  # a line cut short by a crash
    assert spool.pending() == [snap]


@pytest.mark.parametrize(
    "row",
    [(1, "x'); DROP TABLE usage; --", 2), (1, float("inf"), 2), (1, float("nan"), 2),
     (1, True, 2), (1, b"7", 2)],
)  # fmt: skip
def test_bulk_rows_hold_numbers_and_nulls_only(row: tuple[object, ...]) -> None:
    assert _values([(1, None, 2.5), (20261101, -3, 4e20)]) == (
        "(1, NULL, 2.5),(20261101, -3, 4e+20)"
    )
    with pytest.raises(TypeError, match="only numbers and NULLs"):
        _values([(1, 2, 3), row])


def test_a_schema_cut_short_before_its_version_was_written_is_made_whole(
    mariadb: MariaDB,
) -> None:
    url = mariadb.database("usage")
    conn = pymysql.connect(host=HOST, port=mariadb.port, user="root", password="",
                           database="usage")  # fmt: skip
    with conn.cursor() as cur:  # as a first run stopped after its first statement leaves it
        cur.execute("CREATE TABLE schema_version (version INT NOT NULL)")

    async def use() -> list[dict[str, object]]:
        store = await MysqlHistory.open(url)
        try:
            await store.record(snapshot(DAY1, 100))
            return await store.group_history("hgi")
        finally:
            await store.close()

    assert [r["used"] for r in asyncio.run(use())] == [100]
    with conn.cursor() as cur:
        cur.execute("SELECT version FROM schema_version")
        assert cur.fetchall() == ((SCHEMA_VERSION,),)
    conn.close()
