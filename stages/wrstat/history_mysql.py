"""The usage history in MySQL or MariaDB (aiomysql), for sites that share it with other tools.

The same tables and rules as the SQLite store (``stages.wrstat.history``): a snapshot is kept
once however often it is recorded (a duplicate key leaves the row as it is; ``INSERT
IGNORE`` would do the same but cost a ``SHOW WARNINGS`` round trip per batch), the growing
tables are keyed snapshot first with no foreign-key checks, the directory breakdown of a
volume is replaced in one transaction, and rows go in as multi-row inserts in batches. The
schema is created and versioned here.

The database is named by a URL, ``mysql://USER@HOST[:PORT]/DATABASE``; the password never
comes from the topology: ``$HISTORY_DB_PASSWORD``, or the first line of the file named by
``$HISTORY_DB_PASSWORD_FILE``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import os
import re
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar
from urllib.parse import unquote, urlsplit

import aiomysql
import pymysql

from stages.wrstat.history import (
    AT,
    BATCH,
    KEPT_GROUPS,
    KEPT_USERS,
    PREVIOUS,
    SCHEMA_VERSION,
    WARNINGS,
    DirectoryUsage,
    GroupUsage,
    HistoryError,
    HistoryUnavailable,
    Kept,
    Point,
    Recorded,
    Snapshot,
    UserUsage,
    directory_row,
    last_per_volume,
)

SCHEMA = [
    "CREATE TABLE IF NOT EXISTS schema_version (version INT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS volume (id INT AUTO_INCREMENT PRIMARY KEY, "
    "name VARCHAR(255) NOT NULL UNIQUE)",
    "CREATE TABLE IF NOT EXISTS unix_group (id INT AUTO_INCREMENT PRIMARY KEY, "
    "gid BIGINT NOT NULL UNIQUE, name VARCHAR(255) NOT NULL)",
    "CREATE TABLE IF NOT EXISTS pi (id INT AUTO_INCREMENT PRIMARY KEY, "
    "name VARCHAR(255) NOT NULL UNIQUE)",
    "CREATE TABLE IF NOT EXISTS user (id INT AUTO_INCREMENT PRIMARY KEY, "
    "uid BIGINT NOT NULL UNIQUE, name VARCHAR(255) NOT NULL)",
    "CREATE TABLE IF NOT EXISTS base_directory (id INT AUTO_INCREMENT PRIMARY KEY, "
    "volume_id INT NOT NULL, path TEXT NOT NULL, UNIQUE KEY (volume_id, path), "
    "FOREIGN KEY (volume_id) REFERENCES volume(id))",
    "CREATE TABLE IF NOT EXISTS warning (id INT PRIMARY KEY, name VARCHAR(32) NOT NULL UNIQUE)",
    "CREATE TABLE IF NOT EXISTS `usage` (snapshot DATE NOT NULL, "
    "base_directory_id INT NOT NULL, group_id INT NOT NULL, pi_id INT, used BIGINT NOT NULL, "
    "quota BIGINT, files BIGINT NOT NULL, last_modified_days DOUBLE NOT NULL, warning_id INT, "
    "PRIMARY KEY (snapshot, base_directory_id, group_id), KEY (group_id, snapshot))",
    "CREATE TABLE IF NOT EXISTS user_usage (snapshot DATE NOT NULL, volume_id INT NOT NULL, "
    "user_id INT NOT NULL, group_id INT NOT NULL, used BIGINT NOT NULL, "
    "files BIGINT NOT NULL, last_modified_days DOUBLE NOT NULL, "
    "PRIMARY KEY (snapshot, volume_id, user_id, group_id))",
    "CREATE TABLE IF NOT EXISTS filetype (id INT AUTO_INCREMENT PRIMARY KEY, "
    "name VARCHAR(64) NOT NULL UNIQUE)",
    "CREATE TABLE IF NOT EXISTS directory (id BIGINT AUTO_INCREMENT PRIMARY KEY, "
    "volume_id INT NOT NULL, base_directory_id INT NOT NULL, path TEXT NOT NULL, "
    "group_id INT NOT NULL, snapshot DATE NOT NULL, files BIGINT NOT NULL, "
    "used BIGINT NOT NULL, last_modified_days DOUBLE NOT NULL, KEY (volume_id), "
    "FOREIGN KEY (volume_id) REFERENCES volume(id), "
    "FOREIGN KEY (base_directory_id) REFERENCES base_directory(id), "
    "FOREIGN KEY (group_id) REFERENCES unix_group(id))",
    "CREATE TABLE IF NOT EXISTS file_size (directory_id BIGINT NOT NULL, "
    "filetype_id INT NOT NULL, used BIGINT NOT NULL, PRIMARY KEY (directory_id, filetype_id), "
    "FOREIGN KEY (directory_id) REFERENCES directory(id) ON DELETE CASCADE, "
    "FOREIGN KEY (filetype_id) REFERENCES filetype(id))",
    "CREATE TABLE IF NOT EXISTS recorded (volume_id INT NOT NULL, snapshot DATE NOT NULL, "
    "at DATETIME NOT NULL, PRIMARY KEY (volume_id, snapshot), "
    "FOREIGN KEY (volume_id) REFERENCES volume(id))",
]

_TABLE = re.compile(r"CREATE TABLE IF NOT EXISTS `?(\w+)")


def _table(statement: str) -> str:
    """The table a ``SCHEMA`` statement creates."""
    found = _TABLE.search(statement)
    assert found is not None, statement  # every one creates a table
    return found[1]


#: version -> the statements that bring a database of the version before up to it (the
#: same steps as ``stages.wrstat.history.MIGRATIONS``, in MySQL's spelling)
MIGRATIONS: dict[int, list[str]] = {}


P = ParamSpec("P")
T = TypeVar("T")


def _translated(
    method: Callable[Concatenate[MysqlHistory, P], Coroutine[Any, Any, T]],
) -> Callable[Concatenate[MysqlHistory, P], Coroutine[Any, Any, T]]:
    """The driver's lost-connection errors as ``HistoryUnavailable``, naming the database."""

    @functools.wraps(method)
    async def wrapper(self: MysqlHistory, /, *args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await method(self, *args, **kwargs)
        except (pymysql.err.OperationalError, pymysql.err.InterfaceError) as exc:
            t = self.target
            why = exc.args[-1] if exc.args else exc
            msg = f"the history database {t.user}@{t.host}:{t.port}/{t.database}: {why}"
            raise HistoryUnavailable(msg) from exc

    return wrapper


@dataclass(frozen=True)
class Target:
    """Where the history is: from a ``mysql://USER@HOST[:PORT]/DATABASE`` URL."""

    host: str
    port: int
    user: str
    database: str

    @classmethod
    def parse(cls, url: str) -> Target:
        parts = urlsplit(url)
        if parts.scheme not in ("mysql", "mariadb") or not parts.hostname:
            msg = f"{url!r} is not a mysql://USER@HOST[:PORT]/DATABASE URL"
            raise HistoryError(msg)
        if parts.password:
            msg = (
                "the history URL holds a password; put it in $HISTORY_DB_PASSWORD or a file "
                "named by $HISTORY_DB_PASSWORD_FILE instead"
            )
            raise HistoryError(msg)
        database = parts.path.lstrip("/")
        if not database:
            raise HistoryError(f"{url!r} names no database (…/DATABASE at the end)")
        return cls(parts.hostname, parts.port or 3306, unquote(parts.username or ""), database)


def password() -> str:
    """The history database password, from the environment or a file (never the topology)."""
    file = os.environ.get("HISTORY_DB_PASSWORD_FILE")
    if file:
        try:
            return Path(file).read_text(encoding="utf-8").splitlines()[0]
        except (OSError, IndexError) as exc:
            raise HistoryError(f"cannot read the password file {file}: {exc}") from None
    return os.environ.get("HISTORY_DB_PASSWORD", "")


class MysqlHistory:
    """The history in a MySQL or MariaDB database (see the module docstring)."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.conn: Any = None

    @classmethod
    async def open(cls, url: str) -> MysqlHistory:
        store = cls(Target.parse(url))
        await store.connect()
        return store

    @_translated
    async def connect(self) -> None:
        t = self.target
        try:
            self.conn = await aiomysql.connect(
                host=t.host, port=t.port, user=t.user, password=password(), db=t.database,
                autocommit=False, charset="utf8mb4", connect_timeout=10,
            )  # fmt: skip
        except pymysql.err.MySQLError as exc:
            msg = (
                f"cannot reach the history database {t.user}@{t.host}:{t.port}/{t.database}: "
                f"{exc.args[-1] if exc.args else exc}; is the server up, and the user and "
                "password right?"
            )
            raise HistoryUnavailable(msg) from None
        await self._migrate()

    async def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    async def _migrate(self) -> None:
        async with self.conn.cursor() as cur:
            await cur.execute(
                "SELECT COUNT(*) FROM information_schema.tables "
                "WHERE table_schema = DATABASE() AND table_name = 'schema_version'"
            )
            (made,) = await cur.fetchone()
            row = None
            if made:
                await cur.execute("SELECT version FROM schema_version")
                row = await cur.fetchone()
            if row is None:  # new, or cut short before its version was written: what's missing
                await cur.execute("SELECT table_name FROM information_schema.tables "
                                  "WHERE table_schema = DATABASE()")  # fmt: skip
                there = {name for (name,) in await cur.fetchall()}
                for statement in SCHEMA:  # (IF NOT EXISTS on one that exists adds a warning)
                    if _table(statement) not in there:
                        await cur.execute(statement)
                await cur.execute("INSERT INTO schema_version VALUES (%s)", (SCHEMA_VERSION,))
            elif row[0] > SCHEMA_VERSION:
                msg = (
                    f"history schema version {row[0]} is newer than this program's "
                    f"{SCHEMA_VERSION}; upgrade this program"
                )
                raise HistoryError(msg)
            else:  # (MySQL commits each schema change: every step is safe to repeat)
                for version in range(row[0] + 1, SCHEMA_VERSION + 1):
                    for statement in MIGRATIONS.get(version, ()):
                        await cur.execute(statement)
                    await cur.execute("UPDATE schema_version SET version = %s", (version,))
            await cur.executemany("INSERT INTO warning (id, name) VALUES (%s, %s) "
                                  "ON DUPLICATE KEY UPDATE id = id", list(WARNINGS))  # fmt: skip
        await self.conn.commit()

    # -- writing --------------------------------------------------------------------------
    async def _ensure(
        self, cur: Any, table: str, key: str, rows: Iterable[tuple[Any, ...]]
    ) -> dict[Any, int]:
        rows = list(dict.fromkeys(rows))
        cols = {"volume": "name", "pi": "name", "filetype": "name", "unix_group": "gid, name",
                "user": "uid, name"}[table]  # fmt: skip
        if rows:
            marks = ", ".join(["%s"] * len(rows[0]))
            if table in ("unix_group", "user"):  # names change: keep the newest
                sql = (f"INSERT INTO {table} ({cols}) VALUES ({marks}) "
                       "ON DUPLICATE KEY UPDATE name = VALUES(name)")  # fmt: skip
            else:
                sql = (
                    f"INSERT INTO {table} ({cols}) VALUES ({marks}) ON DUPLICATE KEY UPDATE id = id"
                )
            await _many(cur, sql, rows)
        await cur.execute(f"SELECT {key}, id FROM {table}")
        return dict(await cur.fetchall())

    @_translated
    async def record(self, snap: Snapshot) -> Recorded:
        """Keep one snapshot; all or nothing."""
        if self.conn is None:  # dropped after a failure: connect again first
            await self.connect()
        day = snap.date.isoformat()
        number = int(f"{snap.date:%Y%m%d}")  # the date as _bulk writes it
        everything: list[GroupUsage | UserUsage | DirectoryUsage] = [
            *snap.groups, *snap.users, *snap.directories
        ]  # fmt: skip
        try:
            async with self.conn.cursor() as cur:
                volumes = await self._ensure(
                    cur, "volume", "name", [(r.volume,) for r in everything]
                )
                groups = await self._ensure(cur, "unix_group", "gid",
                                            [(r.gid, r.group) for r in everything])  # fmt: skip
                pis = await self._ensure(cur, "pi", "name", [(r.pi,) for r in snap.groups if r.pi])
                users = await self._ensure(
                    cur, "user", "uid", [(r.uid, r.user) for r in snap.users]
                )
                pairs = [(volumes[r.volume], r.base_directory) for r in snap.groups]
                pairs += [(volumes[r.volume], r.base_directory) for r in snap.directories]
                await _many(
                    cur,
                    "INSERT INTO base_directory (volume_id, path) VALUES (%s, %s) "
                    "ON DUPLICATE KEY UPDATE id = id",
                    list(dict.fromkeys(pairs)),
                )
                await cur.execute("SELECT volume_id, path, id FROM base_directory")
                bases = {(v, p): i for v, p, i in await cur.fetchall()}
                usage_rows = await _bulk(
                    cur,
                    "INSERT INTO `usage` (snapshot, base_directory_id, group_id, pi_id, "
                    "used, quota, files, last_modified_days, warning_id) VALUES ",
                    [(number, bases[(volumes[r.volume], r.base_directory)], groups[r.gid],
                      pis.get(r.pi), r.used, r.quota, r.files, r.last_modified_days, r.warning)
                     for r in snap.groups],
                    " ON DUPLICATE KEY UPDATE snapshot = snapshot",
                )  # fmt: skip
                user_rows = await _bulk(
                    cur,
                    "INSERT INTO user_usage (snapshot, volume_id, user_id, group_id, "
                    "used, files, last_modified_days) VALUES ",
                    [(number, volumes[r.volume], users[r.uid], groups[r.gid], r.used, r.files,
                      r.last_modified_days) for r in snap.users],
                    " ON DUPLICATE KEY UPDATE snapshot = snapshot",
                )  # fmt: skip
                await self._replace_directories(cur, snap, day, volumes, groups, bases)
                await cur.executemany(
                    "INSERT INTO recorded (volume_id, snapshot, at) VALUES (%s, %s, NOW()) "
                    "ON DUPLICATE KEY UPDATE at = at",
                    [(volumes[v], day) for v in sorted({r.volume for r in everything})],
                )
            await self.conn.commit()
        except BaseException:
            with contextlib.suppress(pymysql.err.MySQLError, OSError):
                await self.conn.rollback()
            raise
        return Recorded(usage_rows, user_rows, len(snap.directories))

    async def _replace_directories(
        self, cur: Any, snap: Snapshot, day: str, volumes: dict[str, int],
        groups: dict[int, int], bases: dict[tuple[int, str], int],
    ) -> None:  # fmt: skip
        for v in sorted({volumes[d.volume] for d in snap.directories}):
            await cur.execute("DELETE FROM directory WHERE volume_id = %s", (v,))  # cascades
        names = [(t,) for d in snap.directories for t in d.filetypes]
        types = await self._ensure(cur, "filetype", "name", names)
        rows = [directory_row(d, day, volumes, groups, bases) for d in snap.directories]
        await _many(cur, "INSERT INTO directory (volume_id, base_directory_id, path, group_id, "
                    "snapshot, files, used, last_modified_days) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s)", rows)  # fmt: skip
        ids: dict[tuple[int, str, int], int] = {}
        for v in sorted({r[0] for r in rows}):  # the new rows' ids, by what they hold
            await cur.execute("SELECT base_directory_id, path, group_id, id FROM directory "
                              "WHERE volume_id = %s", (v,))  # fmt: skip
            ids.update({(b, p, g): i for b, p, g, i in await cur.fetchall()})
        sizes = [(ids[(r[1], r[2], r[3])], types[t], n)
                 for r, d in zip(rows, snap.directories, strict=True)
                 for t, n in d.filetypes.items()]  # fmt: skip
        await _bulk(cur, "INSERT INTO file_size (directory_id, filetype_id, used) VALUES ", sizes)

    # -- reading --------------------------------------------------------------------------
    @_translated
    async def group_history(
        self, group: str | int, volume: str | None = None
    ) -> list[dict[str, Any]]:
        if self.conn is None:
            await self.connect()
        where = "g.gid = %s" if isinstance(group, int) else "g.name = %s"
        args: list[Any] = [group]
        if volume is not None:
            where += " AND v.name = %s"
            args.append(volume)
        async with self.conn.cursor() as cur:
            await cur.execute(
                "SELECT u.snapshot, v.name, b.path, g.name, g.gid, p.name, u.used, u.quota, "
                "u.files, u.last_modified_days, w.name FROM `usage` u "
                "JOIN base_directory b ON b.id = u.base_directory_id "
                "JOIN volume v ON v.id = b.volume_id JOIN unix_group g ON g.id = u.group_id "
                "LEFT JOIN pi p ON p.id = u.pi_id LEFT JOIN warning w ON w.id = u.warning_id "
                f"WHERE {where} ORDER BY v.name, b.path, u.snapshot",
                args,
            )
            rows = await cur.fetchall()
        await self.conn.commit()  # end the read's transaction: later reads see new rows
        keys = ("snapshot", "volume", "base_directory", "group", "gid", "pi", "used", "quota",
                "files", "last_modified_days", "warning")  # fmt: skip
        out = []
        for r in rows:
            d = dict(zip(keys, r, strict=True))
            d["snapshot"] = d["snapshot"].isoformat()
            out.append(d)
        return out

    @_translated
    async def recent(self, before: dt.date, snapshots: int) -> list[Point]:
        """As ``SqliteHistory.recent``: each volume's last ``snapshots`` snapshots before
        ``before``, row by row."""
        if self.conn is None:
            await self.connect()
        rows: list[Point] = []
        async with self.conn.cursor() as cur:
            await cur.execute(
                "SELECT volume_id, snapshot FROM recorded WHERE snapshot < %s "
                "ORDER BY volume_id, snapshot DESC",
                (before.isoformat(),),
            )
            for volume_id, day in last_per_volume(await cur.fetchall(), snapshots):
                await cur.execute(
                    "SELECT v.name, b.path, g.gid, u.snapshot, u.used FROM `usage` u "
                    "JOIN base_directory b ON b.id = u.base_directory_id "
                    "JOIN volume v ON v.id = b.volume_id JOIN unix_group g ON g.id = u.group_id "
                    "WHERE u.snapshot = %s AND b.volume_id = %s",
                    (day, volume_id),
                )
                rows += [(v, p, g, d.isoformat(), u) for v, p, g, d, u in await cur.fetchall()]
        await self.conn.commit()  # end the read's transaction: later reads see new rows
        return rows

    @_translated
    async def previous(self, volume: str, before: dt.date, exactly: bool = False) -> Kept | None:
        """As ``SqliteHistory.previous``."""
        if self.conn is None:
            await self.connect()
        async with self.conn.cursor() as cur:
            await cur.execute(_mysql(AT if exactly else PREVIOUS), (before.isoformat(), volume))
            found = await cur.fetchone()
            kept = None
            if found is not None:
                volume_id, day = found
                await cur.execute(_mysql(KEPT_GROUPS), (day, volume_id))
                groups = [tuple(r) for r in await cur.fetchall()]
                await cur.execute(_mysql(KEPT_USERS), (day, volume_id))
                users = [tuple(r) for r in await cur.fetchall()]
                kept = Kept(day.isoformat(), groups, users)
        await self.conn.commit()  # end the read's transaction: later reads see new rows
        return kept


def _mysql(sql: str) -> str:
    """A statement of ``stages.wrstat.history`` in MySQL's spelling."""
    return sql.replace("?", "%s").replace(" usage ", " `usage` ")


#: rows per statement of ``_bulk`` (a statement stays well under max_allowed_packet)
BULK_ROWS = 20_000
#: what the text of rows of numbers and NULLs can hold, and nothing else
_NUMBERS = re.compile(r"[0-9eE+\-., ()NUL]*")


def _values(rows: list[tuple[Any, ...]]) -> str:
    """Rows of whole and finite numbers and Nones as SQL ``(..), (..)``: Python's own text
    of the tuples, checked to hold nothing else (no strings, no inf or nan)."""
    text = ",".join(map(repr, rows)).replace("None", "NULL")
    if not _NUMBERS.fullmatch(text):
        bad = next(r for r in rows if not _NUMBERS.fullmatch(repr(r).replace("None", "NULL")))
        raise TypeError(f"only numbers and NULLs are written in bulk, not {bad!r}")
    return text


async def _bulk(cur: Any, head: str, rows: list[tuple[Any, ...]], tail: str = "") -> int:
    """Insert ``rows`` of numbers and NULLs (dates as YYYYMMDD numbers, which MySQL takes
    for dates) in multi-row statements made here, not by the driver: escaping a million
    rows value by value costs more than the server takes to store them. The number of rows
    changed."""
    changed = 0
    for i in range(0, len(rows), BULK_ROWS):
        await cur.execute(head + _values(rows[i : i + BULK_ROWS]) + tail)
        changed += max(0, cur.rowcount)
    return changed


async def _many(cur: Any, sql: str, rows: list[tuple[Any, ...]]) -> int:
    """``executemany`` in batches; the number of rows changed."""
    changed = 0
    for i in range(0, len(rows), BATCH):
        await cur.executemany(sql, rows[i : i + BATCH])
        changed += max(0, cur.rowcount)
    return changed
