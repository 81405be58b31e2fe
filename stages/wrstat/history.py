"""Every run's figures, kept: the usage history a forecast needs, in SQLite (the default).

Tables, in the spirit of lurge's MySQL schema: ``volume``, ``unix_group``, ``pi``, ``user``,
``base_directory``, ``warning`` (1 OK, 2 Kinda OK, 3 Not OK), ``usage`` (one row per volume,
group, base directory and snapshot date: used and quota bytes, files, last modified days,
PI and warning), ``user_usage`` (per volume, user, group and snapshot), the latest
directory breakdown per volume: ``directory`` and ``file_size`` per ``filetype``, and
``recorded``: when each volume's snapshot was first kept, which is how forecasts find a
volume's last few snapshots without reading all of ``usage``.

* Re-recording a snapshot already kept adds nothing to ``usage`` or ``user_usage`` (rows
  are inserted only if their key is new), so a re-run writes its reports again without
  doubling the history.
* ``usage`` and ``user_usage``, the tables that grow by a row per group or user and
  snapshot, are keyed by what they hold, snapshot first: a new snapshot's rows go in at the
  end of the table, and keeping a key unique costs no second index. Their ids come from the
  other tables in the same transaction, so they carry no foreign-key constraints, whose
  checks would cost more than the inserts.
* The directory breakdown of a volume is replaced in one transaction: readers see the old
  one or the new one, never a mix.
* Rows go in with ``executemany`` in batches inside one transaction per snapshot, not one
  ``INSERT`` per row the way lurge wrote them.

``SqliteHistory`` is synchronous; callers on an event loop run it in a thread
(``stages.wrstat.stores``). The schema carries a version (``schema_version``): a new file
gets the whole schema, an older one the ``MIGRATIONS`` steps from its version on, in one
transaction; a file from a newer program is refused.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1
#: version -> the statements that bring a store of the version before up to it (both stores
#: take the same steps; ``stages.wrstat.history_mysql`` has the MySQL spelling)
MIGRATIONS: dict[int, list[str]] = {}
WARNINGS = ((1, "OK"), (2, "Kinda OK"), (3, "Not OK"))

SCHEMA = """
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL) STRICT;
CREATE TABLE IF NOT EXISTS volume (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE) STRICT;
CREATE TABLE IF NOT EXISTS unix_group (id INTEGER PRIMARY KEY, gid INTEGER NOT NULL UNIQUE,
    name TEXT NOT NULL) STRICT;
CREATE TABLE IF NOT EXISTS pi (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE) STRICT;
CREATE TABLE IF NOT EXISTS user (id INTEGER PRIMARY KEY, uid INTEGER NOT NULL UNIQUE,
    name TEXT NOT NULL) STRICT;
CREATE TABLE IF NOT EXISTS base_directory (id INTEGER PRIMARY KEY,
    volume_id INTEGER NOT NULL REFERENCES volume(id), path TEXT NOT NULL,
    UNIQUE (volume_id, path)) STRICT;
CREATE TABLE IF NOT EXISTS warning (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE) STRICT;
CREATE TABLE IF NOT EXISTS usage (snapshot TEXT NOT NULL,
    base_directory_id INTEGER NOT NULL, group_id INTEGER NOT NULL, pi_id INTEGER,
    used INTEGER NOT NULL, quota INTEGER, files INTEGER NOT NULL,
    last_modified_days REAL NOT NULL, warning_id INTEGER,
    PRIMARY KEY (snapshot, base_directory_id, group_id)) STRICT, WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS user_usage (snapshot TEXT NOT NULL, volume_id INTEGER NOT NULL,
    user_id INTEGER NOT NULL, group_id INTEGER NOT NULL, used INTEGER NOT NULL,
    files INTEGER NOT NULL, last_modified_days REAL NOT NULL,
    PRIMARY KEY (snapshot, volume_id, user_id, group_id)) STRICT, WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS filetype (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE) STRICT;
CREATE TABLE IF NOT EXISTS directory (id INTEGER PRIMARY KEY,
    volume_id INTEGER NOT NULL REFERENCES volume(id),
    base_directory_id INTEGER NOT NULL REFERENCES base_directory(id),
    path TEXT NOT NULL, group_id INTEGER NOT NULL REFERENCES unix_group(id),
    snapshot TEXT NOT NULL, files INTEGER NOT NULL, used INTEGER NOT NULL,
    last_modified_days REAL NOT NULL) STRICT;
CREATE TABLE IF NOT EXISTS file_size (directory_id INTEGER NOT NULL REFERENCES directory(id),
    filetype_id INTEGER NOT NULL REFERENCES filetype(id), used INTEGER NOT NULL,
    PRIMARY KEY (directory_id, filetype_id)) STRICT, WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS recorded (volume_id INTEGER NOT NULL REFERENCES volume(id),
    snapshot TEXT NOT NULL, at TEXT NOT NULL, PRIMARY KEY (volume_id, snapshot)) STRICT;
CREATE INDEX IF NOT EXISTS usage_by_group ON usage (group_id, snapshot);
CREATE INDEX IF NOT EXISTS directory_by_volume ON directory (volume_id);
"""

#: rows per executemany call
BATCH = 50_000

#: a kept usage figure: (volume, base directory, gid, snapshot date, bytes used)
Point = tuple[str, str, int, str, int]


@dataclass(frozen=True)
class GroupUsage:
    volume: str
    gid: int
    group: str
    #: None when nobody knows
    pi: str | None
    base_directory: str
    used: int
    quota: int | None
    files: int
    last_modified_days: float
    #: 1 OK, 2 Kinda OK, 3 Not OK; None when the quota is unknown
    warning: int | None


@dataclass(frozen=True)
class UserUsage:
    volume: str
    uid: int
    user: str
    gid: int
    group: str
    used: int
    files: int
    last_modified_days: float


@dataclass(frozen=True)
class DirectoryUsage:
    volume: str
    base_directory: str
    path: str
    gid: int
    group: str
    used: int
    files: int
    last_modified_days: float
    filetypes: dict[str, int] = field(default_factory=dict)


@dataclass
class Snapshot:
    """One run's figures for one snapshot date."""

    date: dt.date
    groups: Sequence[GroupUsage] = ()
    users: Sequence[UserUsage] = ()
    directories: Sequence[DirectoryUsage] = ()


@dataclass(frozen=True)
class Recorded:
    """What recording a snapshot added."""

    usage_rows: int
    user_rows: int
    directories: int


@dataclass(frozen=True)
class Kept:
    """A volume's figures of one kept snapshot: what a diff compares with."""

    #: the snapshot date, YYYY-MM-DD
    snapshot: str
    #: (gid, base directory, used, files)
    groups: list[tuple[int, str, int, int]]
    #: (uid, gid, used, files)
    users: list[tuple[int, int, int, int]]


#: the statements that read one snapshot of a volume back (``?``: snapshot, volume id)
PREVIOUS = (
    "SELECT volume_id, snapshot FROM recorded WHERE snapshot < ? AND volume_id = "
    "(SELECT id FROM volume WHERE name = ?) ORDER BY snapshot DESC LIMIT 1"
)
AT = (
    "SELECT volume_id, snapshot FROM recorded WHERE snapshot = ? AND volume_id = "
    "(SELECT id FROM volume WHERE name = ?)"
)
KEPT_GROUPS = (
    "SELECT g.gid, b.path, u.used, u.files FROM usage u "
    "JOIN base_directory b ON b.id = u.base_directory_id JOIN unix_group g ON g.id = u.group_id "
    "WHERE u.snapshot = ? AND b.volume_id = ? ORDER BY g.gid, b.path"
)
KEPT_USERS = (
    "SELECT s.uid, g.gid, x.used, x.files FROM user_usage x JOIN user s ON s.id = x.user_id "
    "JOIN unix_group g ON g.id = x.group_id WHERE x.snapshot = ? AND x.volume_id = ? "
    "ORDER BY s.uid, g.gid"
)


class HistoryError(Exception):
    """The history store cannot be used; says which and what to do."""


class HistoryUnavailable(HistoryError):
    """The store cannot be reached or written now (a server down, a connection lost, a
    file locked): trying again later may work."""


class SqliteHistory:
    """The history in one SQLite file (created with its schema if missing)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # one caller at a time, but not always from the same thread (see the docstring)
            self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            msg = (
                f"cannot use {self.path} as the usage history: {exc}; move it away or set "
                "HISTORY_DB"
            )
            raise HistoryError(msg) from None
        self._ids: dict[str, dict[Any, int]] = {}

    def _migrate(self) -> None:
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            made = db.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
            ).fetchone()
            row = db.execute("SELECT version FROM schema_version").fetchone() if made else None
            if row is None:
                for statement in SCHEMA.split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION,))
            elif row[0] > SCHEMA_VERSION:
                msg = f"schema version {row[0]} is newer than this program's {SCHEMA_VERSION}"
                raise sqlite3.DatabaseError(msg)
            else:
                for version in range(row[0] + 1, SCHEMA_VERSION + 1):
                    for statement in MIGRATIONS.get(version, ()):
                        db.execute(statement)
                    db.execute("UPDATE schema_version SET version = ?", (version,))
            db.executemany("INSERT OR IGNORE INTO warning (id, name) VALUES (?, ?)", WARNINGS)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def close(self) -> None:
        self.db.close()

    # -- ids ------------------------------------------------------------------------------
    def _ensure(self, table: str, key: str, rows: Iterable[tuple[Any, ...]]) -> dict[Any, int]:
        """Ids of ``rows`` (first value the unique key) in ``table``, adding the new ones."""
        rows = list(dict.fromkeys(rows))
        cols = {"volume": "name", "pi": "name", "filetype": "name", "unix_group": "gid, name",
                "user": "uid, name"}[table]  # fmt: skip
        marks = ", ".join("?" * len(rows[0])) if rows else ""
        if rows:
            if table in ("unix_group", "user"):  # names change: keep the newest
                sql = (f"INSERT INTO {table} ({cols}) VALUES ({marks}) "
                       f"ON CONFLICT ({key}) DO UPDATE SET name = excluded.name")  # fmt: skip
            else:
                sql = f"INSERT OR IGNORE INTO {table} ({cols}) VALUES ({marks})"
            self.db.executemany(sql, rows)
        return dict(self.db.execute(f"SELECT {key}, id FROM {table}").fetchall())

    def _base_directories(
        self, volumes: dict[str, int], pairs: Iterable[tuple[str, str]]
    ) -> dict[tuple[int, str], int]:
        rows = list(dict.fromkeys((volumes[v], p) for v, p in pairs))
        self.db.executemany(
            "INSERT OR IGNORE INTO base_directory (volume_id, path) VALUES (?, ?)", rows
        )
        found = self.db.execute("SELECT volume_id, path, id FROM base_directory").fetchall()
        return {(v, p): i for v, p, i in found}

    # -- writing --------------------------------------------------------------------------
    def record(self, snap: Snapshot) -> Recorded:
        """Keep one snapshot (see the module docstring); all or nothing."""
        db = self.db
        day = snap.date.isoformat()
        db.execute("BEGIN IMMEDIATE")
        try:
            everything: list[GroupUsage | UserUsage | DirectoryUsage] = [
                *snap.groups, *snap.users, *snap.directories
            ]  # fmt: skip
            volumes = self._ensure("volume", "name", [(r.volume,) for r in everything])
            groups = self._ensure("unix_group", "gid", [(r.gid, r.group) for r in everything])
            pis = self._ensure("pi", "name", [(r.pi,) for r in snap.groups if r.pi])
            users = self._ensure("user", "uid", [(r.uid, r.user) for r in snap.users])
            pairs = [(r.volume, r.base_directory) for r in snap.groups]
            pairs += [(r.volume, r.base_directory) for r in snap.directories]
            bases = self._base_directories(volumes, pairs)
            before = db.total_changes
            _many(db, "INSERT OR IGNORE INTO usage (snapshot, base_directory_id, group_id, "
                  "pi_id, used, quota, files, last_modified_days, warning_id) "
                  "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                  sorted(((day, bases[(volumes[r.volume], r.base_directory)], groups[r.gid],
                           pis.get(r.pi), r.used, r.quota, r.files, r.last_modified_days,
                           r.warning) for r in snap.groups), key=lambda row: row[:3]))  # fmt: skip
            usage_rows = db.total_changes - before
            before = db.total_changes
            _many(db, "INSERT OR IGNORE INTO user_usage (snapshot, volume_id, user_id, "
                  "group_id, used, files, last_modified_days) VALUES (?, ?, ?, ?, ?, ?, ?)",
                  sorted(((day, volumes[r.volume], users[r.uid], groups[r.gid], r.used,
                           r.files, r.last_modified_days) for r in snap.users),
                         key=lambda row: row[:4]))  # fmt: skip
            user_rows = db.total_changes - before
            dirs = self._replace_directories(snap, day, volumes, groups, bases)
            kept = [(volumes[v], day) for v in sorted({r.volume for r in everything})]
            db.executemany("INSERT OR IGNORE INTO recorded (volume_id, snapshot, at) "
                           "VALUES (?, ?, datetime('now'))", kept)  # fmt: skip
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return Recorded(usage_rows, user_rows, dirs)

    def _replace_directories(
        self,
        snap: Snapshot,
        day: str,
        volumes: dict[str, int],
        groups: dict[int, int],
        bases: dict[tuple[int, str], int],
    ) -> int:
        db = self.db
        replaced = sorted({volumes[d.volume] for d in snap.directories})
        for v in replaced:
            db.execute("DELETE FROM file_size WHERE directory_id IN "
                       "(SELECT id FROM directory WHERE volume_id = ?)", (v,))  # fmt: skip
            db.execute("DELETE FROM directory WHERE volume_id = ?", (v,))
        types = self._ensure("filetype", "name",
                             [(t,) for d in snap.directories for t in d.filetypes])  # fmt: skip
        rows = [directory_row(d, day, volumes, groups, bases) for d in snap.directories]
        _many(db, "INSERT INTO directory (volume_id, base_directory_id, path, group_id, "
              "snapshot, files, used, last_modified_days) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
              rows)  # fmt: skip
        ids: dict[tuple[int, str, int], int] = {}
        for v in replaced:  # the new rows' ids, by what they hold
            ids.update({(b, p, g): i for b, p, g, i in db.execute(
                "SELECT base_directory_id, path, group_id, id FROM directory WHERE volume_id = ?",
                (v,))})  # fmt: skip
        _many(db, "INSERT INTO file_size (directory_id, filetype_id, used) VALUES (?, ?, ?)",
              ((ids[(r[1], r[2], r[3])], types[t], n)
               for r, d in zip(rows, snap.directories, strict=True)
               for t, n in d.filetypes.items()))  # fmt: skip
        return len(snap.directories)

    # -- reading --------------------------------------------------------------------------
    def group_history(self, group: str | int, volume: str | None = None) -> list[dict[str, Any]]:
        """Every kept row of one group (by name or gid), oldest first."""
        where = "g.gid = ?" if isinstance(group, int) else "g.name = ?"
        args: list[Any] = [group]
        if volume is not None:
            where += " AND v.name = ?"
            args.append(volume)
        rows = self.db.execute(
            "SELECT u.snapshot, v.name, b.path, g.name, g.gid, p.name, u.used, u.quota, "
            "u.files, u.last_modified_days, w.name FROM usage u "
            "JOIN base_directory b ON b.id = u.base_directory_id "
            "JOIN volume v ON v.id = b.volume_id JOIN unix_group g ON g.id = u.group_id "
            "LEFT JOIN pi p ON p.id = u.pi_id LEFT JOIN warning w ON w.id = u.warning_id "
            f"WHERE {where} ORDER BY v.name, b.path, u.snapshot",
            args,
        ).fetchall()
        keys = ("snapshot", "volume", "base_directory", "group", "gid", "pi", "used", "quota",
                "files", "last_modified_days", "warning")  # fmt: skip
        return [dict(zip(keys, r, strict=True)) for r in rows]

    def recent(self, before: dt.date, snapshots: int) -> list[Point]:
        """``(volume, base directory, gid, snapshot, used)`` of every kept row of each
        volume's last ``snapshots`` snapshots before ``before``: what forecasts are fitted to."""
        kept = self.db.execute(
            "SELECT volume_id, snapshot FROM recorded WHERE snapshot < ? "
            "ORDER BY volume_id, snapshot DESC",
            (before.isoformat(),),
        ).fetchall()
        rows: list[Point] = []
        for volume_id, day in last_per_volume(kept, snapshots):
            rows += self.db.execute(
                "SELECT v.name, b.path, g.gid, u.snapshot, u.used FROM usage u "
                "JOIN base_directory b ON b.id = u.base_directory_id "
                "JOIN volume v ON v.id = b.volume_id JOIN unix_group g ON g.id = u.group_id "
                "WHERE u.snapshot = ? AND b.volume_id = ?",
                (day, volume_id),
            ).fetchall()
        return rows

    def previous(self, volume: str, before: dt.date, exactly: bool = False) -> Kept | None:
        """The figures of ``volume``'s last snapshot kept before ``before`` (``exactly``:
        of the snapshot of that date); None if there is none."""
        found = self.db.execute(
            AT if exactly else PREVIOUS, (before.isoformat(), volume)
        ).fetchone()
        if found is None:
            return None
        volume_id, day = found
        groups = self.db.execute(KEPT_GROUPS, (day, volume_id)).fetchall()
        users = self.db.execute(KEPT_USERS, (day, volume_id)).fetchall()
        return Kept(day, groups, users)


def last_per_volume(kept: Iterable[tuple[int, Any]], snapshots: int) -> list[tuple[int, Any]]:
    """The first ``snapshots`` of each volume's ``(volume id, snapshot)`` pairs, given
    newest first within each volume."""
    out: list[tuple[int, Any]] = []
    seen: dict[int, int] = {}
    for volume_id, day in kept:
        seen[volume_id] = seen.get(volume_id, 0) + 1
        if seen[volume_id] <= snapshots:
            out.append((volume_id, day))
    return out


def directory_row(
    d: DirectoryUsage,
    day: str,
    volumes: dict[str, int],
    groups: dict[int, int],
    bases: dict[tuple[int, str], int],
) -> tuple[Any, ...]:
    """The values of one ``directory`` row, in the order both stores insert them."""
    v = volumes[d.volume]
    return (v, bases[(v, d.base_directory)], d.path, groups[d.gid], day, d.files, d.used,
            d.last_modified_days)  # fmt: skip


def _many(db: sqlite3.Connection, sql: str, rows: Iterable[tuple[Any, ...]]) -> None:
    batch: list[tuple[Any, ...]] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= BATCH:
            db.executemany(sql, batch)
            batch.clear()
    if batch:
        db.executemany(sql, batch)
