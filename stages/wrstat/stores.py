"""Which history store a run keeps its figures in, behind one async interface.

``HISTORY_DB`` (the ``history`` parameter of the report stage) names it: a file path for
SQLite, the embedded default (``<REPORT_DIR>/history.sqlite`` when empty), or a
``mysql://USER@HOST[:PORT]/DATABASE`` URL for MySQL or MariaDB (``stages.wrstat.history_mysql``).
Either way the caller awaits the same methods, and nothing blocks its event loop: SQLite's
calls run in a worker thread, one at a time.

>>> describe(open_store("", Path("reports")))
'SQLite reports/history.sqlite'
>>> describe(open_store("mysql://usage@db.example.org/lustre_usage", Path("reports")))
'MySQL usage@db.example.org:3306/lustre_usage'
"""

from __future__ import annotations

import asyncio
import datetime as dt
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from stages.wrstat.history import (
    HistoryUnavailable,
    Kept,
    Point,
    Recorded,
    Snapshot,
    SqliteHistory,
)

if TYPE_CHECKING:
    from stages.wrstat.history_mysql import MysqlHistory

#: what the ``history`` parameter says to keep no history at all
OFF = ("off", "none", "no")


class Store(Protocol):
    async def connect(self) -> None: ...
    async def close(self) -> None: ...
    async def record(self, snap: Snapshot) -> Recorded: ...
    async def recent(self, before: dt.date, snapshots: int) -> list[Point]: ...
    async def group_history(
        self, group: str | int, volume: str | None = None
    ) -> list[dict[str, Any]]: ...
    async def previous(
        self, volume: str, before: dt.date, exactly: bool = False
    ) -> Kept | None: ...


class SqliteStore:
    """``SqliteHistory`` off the event loop: each call in a worker thread, one at a time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.history: SqliteHistory | None = None
        self._lock = asyncio.Lock()

    async def _open(self) -> SqliteHistory:
        if self.history is None:  # creates or migrates the file
            self.history = await asyncio.to_thread(SqliteHistory, self.path)
        return self.history

    async def _call(self, method: str, *args: Any) -> Any:
        async with self._lock:
            history = await self._open()
            try:
                return await asyncio.to_thread(getattr(history, method), *args)
            except sqlite3.OperationalError as exc:  # locked, disk full, I/O error
                raise HistoryUnavailable(f"the history file {self.path}: {exc}") from exc

    async def connect(self) -> None:
        async with self._lock:
            await self._open()

    async def close(self) -> None:
        async with self._lock:
            if self.history is not None:
                await asyncio.to_thread(self.history.close)
                self.history = None

    async def record(self, snap: Snapshot) -> Recorded:
        result: Recorded = await self._call("record", snap)
        return result

    async def recent(self, before: dt.date, snapshots: int) -> list[Point]:
        rows: list[Point] = await self._call("recent", before, snapshots)
        return rows

    async def group_history(
        self, group: str | int, volume: str | None = None
    ) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = await self._call("group_history", group, volume)
        return rows

    async def previous(self, volume: str, before: dt.date, exactly: bool = False) -> Kept | None:
        kept: Kept | None = await self._call("previous", volume, before, exactly)
        return kept


def is_url(spec: str) -> bool:
    return spec.startswith(("mysql://", "mariadb://"))


def default_file(report_dir: Path) -> Path:
    """Where the history is kept when nothing says otherwise."""
    return report_dir / "history.sqlite"


def open_store(spec: str, report_dir: Path) -> SqliteStore | MysqlHistory:
    """The store ``spec`` names (see the module docstring), not yet connected."""
    if is_url(spec):  # the MySQL driver only when it is used
        from stages.wrstat.history_mysql import MysqlHistory, Target  # noqa: PLC0415

        return MysqlHistory(Target.parse(spec))
    return SqliteStore(Path(spec) if spec else default_file(report_dir))


def describe(store: SqliteStore | MysqlHistory) -> str:
    """The store as a person would name it (never with a password)."""
    if isinstance(store, SqliteStore):
        return f"SQLite {store.path}"
    t = store.target
    return f"MySQL {t.user}@{t.host}:{t.port}/{t.database}"
