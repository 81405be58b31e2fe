"""``python -m bench history``: writing one run's usage history, against row-by-row INSERTs.

One synthetic snapshot of 100,000 (volume, group, base directory) rows and 1,000,000
(volume, user, group) rows, written in the same run of this script:

* to SQLite, with the history store (``stages.wrstat.history``), and row by row: one
  ``INSERT`` statement per row with its ids looked up per row, the way lurge wrote them
  (in one transaction, so the figure is not just fsyncs);
* to MariaDB (a server started for the benchmark on a free port, as the tests do), with
  the MySQL store (``stages.wrstat.history_mysql``), and row by row with pymysql. Row by
  row over a connection is slow enough that it is timed on the first ``--sample`` rows of
  each table and its rate taken from those; the tables are small then, so the figure
  flatters it (the smaller the sample, the more).

Both ways write the same tables (the store's schema). It prints rows/s for each and the
ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

import pymysql

from stages.wrstat.history import GroupUsage, Snapshot, SqliteHistory, UserUsage
from stages.wrstat.history_mysql import MysqlHistory
from tests.databases import MariaDB

DAY = dt.date(2026, 11, 1)


def synthetic(groups: int, users: int) -> Snapshot:
    """``groups`` group rows and ``users`` user rows with realistic shapes: 4 volumes,
    2,000 groups, 10,000 users."""
    g = [
        GroupUsage(f"scratch{100 + i % 4}", 10_000 + i % 2_000, f"group{i % 2_000}",
                   f"PI{i % 300}", f"/lustre/scratch{100 + i % 4}/teams/t{i}", i * 4096,
                   10**13, i % 1000, (i % 365) / 10, 1)
        for i in range(groups)
    ]  # fmt: skip
    u = []
    per_user = max(1, users // (4 * 10_000))
    for i in range(users):
        vol, rest = divmod(i, users // 4)
        uid, k = divmod(rest, per_user)
        gid = 10_000 + (uid * 7 + k) % 2_000
        u.append(UserUsage(f"scratch{100 + vol}", 20_000 + uid, f"user{uid}", gid,
                           f"group{gid - 10_000}", i * 512, i % 500, (i % 365) / 10))  # fmt: skip
    return Snapshot(DAY, g, u, [])


def sqlite_store(snap: Snapshot, folder: Path) -> float:
    h = SqliteHistory(folder / "store.sqlite")
    t0 = time.perf_counter()
    h.record(snap)
    seconds = time.perf_counter() - t0
    h.close()
    return seconds


def _row_by_row(cur: Any, snap: Snapshot, q: str, limit: int | None) -> int:
    """One statement at a time, as lurge wrote rows: look each id up (adding it when
    missing), then INSERT the row (``cur`` is a DB-API cursor, ``q`` its placeholder)."""

    def ident(table: str, where: str, values: tuple[Any, ...], cols: str) -> int:
        cur.execute(f"SELECT id FROM {table} WHERE {where}", values)
        row = cur.fetchone()
        if row is not None:
            return int(row[0])
        marks = ", ".join([q] * len(values))
        cur.execute(f"INSERT INTO {table} ({cols}) VALUES ({marks})", values)
        return int(cur.lastrowid)

    n = 0
    for r in snap.groups[:limit]:
        v = ident("volume", f"name = {q}", (r.volume,), "name")
        g = ident("unix_group", f"gid = {q} AND name = {q}", (r.gid, r.group), "gid, name")
        p = ident("pi", f"name = {q}", (r.pi,), "name")
        b = ident("base_directory", f"volume_id = {q} AND path = {q}", (v, r.base_directory),
                  "volume_id, path")  # fmt: skip
        cur.execute(
            "INSERT INTO `usage` (base_directory_id, group_id, snapshot, pi_id, used, quota, "
            f"files, last_modified_days, warning_id) VALUES ({q}, {q}, {q}, {q}, {q}, {q}, {q}, "
            f"{q}, {q})",
            (b, g, str(DAY), p, r.used, r.quota, r.files, r.last_modified_days, r.warning),
        )
        n += 1
    for r in snap.users[:limit]:
        v = ident("volume", f"name = {q}", (r.volume,), "name")
        u = ident("user", f"uid = {q} AND name = {q}", (r.uid, r.user), "uid, name")
        g = ident("unix_group", f"gid = {q} AND name = {q}", (r.gid, r.group), "gid, name")
        cur.execute(
            "INSERT INTO user_usage (volume_id, user_id, group_id, snapshot, used, files, "
            f"last_modified_days) VALUES ({q}, {q}, {q}, {q}, {q}, {q}, {q})",
            (v, u, g, str(DAY), r.used, r.files, r.last_modified_days),
        )
        n += 1
    return n


def sqlite_rows(snap: Snapshot, folder: Path) -> tuple[int, float]:
    SqliteHistory(folder / "rows.sqlite").close()  # the same schema
    db = sqlite3.connect(folder / "rows.sqlite", isolation_level=None)
    db.execute("BEGIN")
    t0 = time.perf_counter()
    n = _row_by_row(db.cursor(), snap, "?", None)
    db.execute("COMMIT")
    seconds = time.perf_counter() - t0
    db.close()
    return n, seconds


async def mysql_store(snap: Snapshot, url: str) -> float:
    store = await MysqlHistory.open(url)
    try:
        t0 = time.perf_counter()
        await store.record(snap)
        return time.perf_counter() - t0
    finally:
        await store.close()


def mysql_rows(snap: Snapshot, server: MariaDB, url: str, sample: int) -> tuple[int, float]:
    asyncio.run(_schema(url))
    conn = pymysql.connect(host="127.0.0.1", port=server.port, user="root", password="",
                           database=url.rsplit("/", 1)[1], autocommit=False)  # fmt: skip
    with conn.cursor() as cur:
        t0 = time.perf_counter()
        n = _row_by_row(cur, snap, "%s", sample)
        conn.commit()
        seconds = time.perf_counter() - t0
    conn.close()
    return n, seconds


async def _schema(url: str) -> None:
    store = await MysqlHistory.open(url)
    await store.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench history",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--groups", type=int, default=100_000, help="group rows")
    parser.add_argument("--users", type=int, default=1_000_000, help="user rows")
    parser.add_argument("--sample", type=int, default=20_000,
                        help="rows of each table timed row by row on MariaDB")  # fmt: skip
    args = parser.parse_args(argv)
    snap = synthetic(args.groups, args.users)
    total = len(snap.groups) + len(snap.users)
    print(f"rows: {len(snap.groups):,} group + {len(snap.users):,} user = {total:,}")
    with tempfile.TemporaryDirectory(prefix="bench-history-") as tmp:
        folder = Path(tmp)
        lite = sqlite_store(snap, folder)
        lite_n, lite_rows = sqlite_rows(snap, folder)
        with MariaDB(folder / "mariadb") as server:
            my = asyncio.run(mysql_store(snap, server.database("store")))
            my_n, my_rows = mysql_rows(snap, server, server.database("rows"), args.sample)
    rates = {
        "sqlite store": total / lite,
        "sqlite row by row": lite_n / lite_rows,
        "mariadb store": total / my,
        "mariadb row by row": my_n / my_rows,
    }
    print(f"SQLite   store       {lite:7.2f} s  {rates['sqlite store']:>12,.0f} rows/s")
    print(f"SQLite   row by row  {lite_rows:7.2f} s  {rates['sqlite row by row']:>12,.0f} rows/s"
          f"  ({lite_n:,} rows)")  # fmt: skip
    print(f"MariaDB  store       {my:7.2f} s  {rates['mariadb store']:>12,.0f} rows/s")
    print(f"MariaDB  row by row  {my_rows:7.2f} s  {rates['mariadb row by row']:>12,.0f} rows/s"
          f"  (first {my_n:,} rows, rate taken from them)")  # fmt: skip
    print(f"store vs row by row: SQLite {rates['sqlite store'] / rates['sqlite row by row']:.1f}x, "
          f"MariaDB {rates['mariadb store'] / rates['mariadb row by row']:.1f}x")  # fmt: skip
    return 0
