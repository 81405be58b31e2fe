"""No history row lost when the database goes away: retries with backoff, then a spool file
that the next run replays.

``keep(store, snapshot, spool)`` records a snapshot; if the database fails, it reconnects
and tries again (``attempts`` times, waiting ``backoff``, doubling, between them); if it
still fails, the snapshot goes to the spool file (one JSON line per snapshot, appended and
synced) and the run goes on with its reports. ``replay(store, spool)``, at the start of the
next run, records every spooled snapshot (recording is idempotent, so a snapshot that did
get through before the failure is not doubled) and empties the spool.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import json
import logging
import os
from pathlib import Path
from typing import Any, Protocol

from stages.wrstat.history import (
    DirectoryUsage,
    GroupUsage,
    HistoryError,
    Recorded,
    Snapshot,
    UserUsage,
)

log = logging.getLogger("stages.wrstat")

#: what a store that cannot be reached or written raises (the stores turn their drivers'
#: errors into ``HistoryUnavailable``; a refused connection is a ``HistoryError`` too)
DATABASE_ERRORS = (HistoryError, ConnectionError, OSError)


class Store(Protocol):
    async def connect(self) -> None: ...
    async def close(self) -> None: ...
    async def record(self, snap: Snapshot) -> Recorded: ...


def to_json(snap: Snapshot) -> str:
    return json.dumps({
        "date": snap.date.isoformat(),
        "groups": [dataclasses.astuple(g) for g in snap.groups],
        "users": [dataclasses.astuple(u) for u in snap.users],
        "directories": [dataclasses.asdict(d) for d in snap.directories],
    })  # fmt: skip


def from_json(line: str) -> Snapshot:
    d: dict[str, Any] = json.loads(line)
    return Snapshot(
        dt.date.fromisoformat(d["date"]),
        [GroupUsage(*g) for g in d["groups"]],
        [UserUsage(*u) for u in d["users"]],
        [DirectoryUsage(**x) for x in d["directories"]],
    )


class Spool:
    """Snapshots waiting to be recorded, one JSON line each."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def add(self, snap: Snapshot) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as f:
            f.write(to_json(snap) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def pending(self) -> list[Snapshot]:
        """The spooled snapshots; a line cut short by a crash is skipped with a warning."""
        if not self.path.exists():
            return []
        out = []
        for n, line in enumerate(self.path.read_text(encoding="utf-8").splitlines(), start=1):
            try:
                out.append(from_json(line))
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("%s:%d: a spooled snapshot that cannot be read (%s); skipped",
                            self.path, n, exc)  # fmt: skip
        return out

    def clear(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


async def keep(
    store: Store, snap: Snapshot, spool: Spool, attempts: int = 5, backoff: float = 1.0
) -> Recorded | None:
    """Record ``snap``, retrying; None if it went to the spool instead."""
    delay = backoff
    for attempt in range(1, attempts + 1):
        try:
            return await store.record(snap)
        except DATABASE_ERRORS as exc:
            log.warning("recording the %s snapshot failed (attempt %d of %d): %s",
                        snap.date, attempt, attempts, exc)  # fmt: skip
        if attempt < attempts:
            await asyncio.sleep(delay)
            delay *= 2
            with contextlib.suppress(*DATABASE_ERRORS):
                await store.close()
                await store.connect()
    await asyncio.to_thread(spool.add, snap)  # written and synced off the event loop
    log.error("the %s snapshot could not be recorded; it is kept in %s and the next run "
              "records it", snap.date, spool.path)  # fmt: skip
    return None


async def replay(store: Store, spool: Spool) -> int:
    """Record every spooled snapshot, then empty the spool; how many there were."""
    pending = await asyncio.to_thread(spool.pending)
    for snap in pending:
        await store.record(snap)
    spool.clear()
    if pending:
        log.info("recorded %d snapshot(s) kept from an earlier run in %s", len(pending), spool.path)
    return len(pending)
