"""The ``changes`` stage: each volume's usage against its previous snapshot in the history.

It takes the figures ``stages.wrstat.report`` passes on (one item per volume and date),
finds the volume's last snapshot kept in the history before that date, and writes, beside
the usage reports, for each date with something to compare:

* ``changes-<YYYYMMDD>.tsv``: Volume, Since, Kind (group or user), Top Level Path, Group,
  GID, User, UID, Usage Before, Usage After, Change (bytes), Change (%), Files Before,
  Files After, Status (appeared, vanished, changed); rows that did not change are left out;
  per volume, groups first, the largest changes first;
* ``changes-<YYYYMMDD>.jsonl``: the same rows as JSON objects.

A volume seen for the first time has nothing to compare with: nothing is written for it,
and the log says so. With ``files: true``, when the previous snapshot's stats file of the
volume is still in ``wrstat_dir``, the file-level diff runs as well (``stages.diff.local``)
and writes its lists into ``file-changes-<volume>-<YYYYMMDD>/``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import math
from pathlib import Path
from typing import Any

from pipeline import Context
from stages.diff.aggregate import (
    APPEARED,
    CHANGED,
    VANISHED,
    Diff,
    Snapshot,
    diff,
    groups_table,
    users_table,
)
from stages.outfiles import jsonl, tsv, write_atomically
from stages.wrstat.history import HistoryError
from stages.wrstat.stores import OFF, describe, open_store

COLUMNS = ("Volume", "Since", "Kind", "Top Level Path", "Group", "GID", "User", "UID",
           "Usage Before", "Usage After", "Change (bytes)", "Change (%)", "Files Before",
           "Files After", "Status")  # fmt: skip
KEYS = ("volume", "since", "kind", "top_level_path", "group", "gid", "user", "uid",
        "usage_before", "usage_after", "change", "change_percent", "files_before",
        "files_after", "status")  # fmt: skip


def _day(text: str) -> dt.date:
    return dt.datetime.strptime(text.replace("-", ""), "%Y%m%d").replace(tzinfo=dt.UTC).date()


class Changes:
    """Compare each volume with its previous snapshot (see the module docstring).

    ``dir``: where the reports are; ``history``: the history store, as ``report``'s
    parameter of that name; ``files``: also the file-level diff, from the stats files in
    ``wrstat_dir``; ``largest``: how many of the largest files created it lists."""

    def __init__(
        self,
        dir: str,
        history: str | bool | None = None,
        files: bool = False,
        wrstat_dir: str | None = None,
        largest: int = 20,
    ) -> None:
        self.dir = Path(dir)
        # YAML reads a bare off or no as false
        self.history = "off" if history is False else "" if history is None else str(history)
        self.files = files
        self.wrstat_dir = Path(wrstat_dir) if wrstat_dir else None
        self.largest = largest
        self.snapshots: list[dict[str, Any]] = []

    def process(self, item: Any, ctx: Context) -> None:
        for one in item if isinstance(item, list) else [item]:
            if one.get("kind") == "snapshot":
                self.snapshots.append(one)

    async def finish(self, ctx: Context) -> None:
        if not self.snapshots:
            return
        if self.history.lower() in OFF:
            ctx.log.info("no history kept (history: %s): no changes to write", self.history)
            return
        store = open_store(self.history, self.dir)
        by_date: dict[str, list[tuple[dict[str, Any], Diff]]] = {}
        first: dict[str, list[str]] = {}
        todo = sorted(self.snapshots, key=lambda s: (s["date"], s["volume"]))
        try:
            while todo:
                s = todo[0]
                kept = await store.previous(s["volume"], _day(s["date"]))
                todo.pop(0)
                if kept is None:
                    first.setdefault(s["date"], []).append(s["volume"])
                    continue
                before = Snapshot(s["volume"], kept.snapshot.replace("-", ""),
                                  groups_table(kept.groups), users_table(kept.users))  # fmt: skip
                now = Snapshot(s["volume"], s["date"], s["groups"], s["users"])
                by_date.setdefault(s["date"], []).append((s, diff(before, now)))
        except HistoryError as exc:  # the reports are written; the changes wait for a run
            missed = ", ".join(sorted({f"{s['volume']}@{s['date']}" for s in todo}))
            ctx.warn(f"the history ({describe(store)}) could not be read: {exc}; no changes "
                     f"written for {missed}; a run once it is back writes them")  # fmt: skip
        finally:
            with contextlib.suppress(HistoryError):
                await store.close()
        for date, volumes in sorted(first.items()):
            ctx.log.info("%s: no earlier snapshot in the history (%s) to compare the one of %s "
                         "with (a first run); no changes written for %s",
                         ", ".join(volumes), describe(store), date,
                         "it" if len(volumes) == 1 else "them")  # fmt: skip
        for date, found in sorted(by_date.items()):
            rows = [row for s, d in found for row in _rows(s, d)]
            await asyncio.to_thread(self._write, date, rows)
            ctx.log.info("changes since the previous snapshot of %d volume(s): %d rows in %s",
                         len(found), len(rows), self.dir / f"changes-{date}.tsv")  # fmt: skip
            if self.files:
                for s, d in found:
                    await self._file_level(s, d.before, ctx)

    def _write(self, date: str, rows: list[tuple[Any, ...]]) -> None:
        write_atomically(self.dir / f"changes-{date}.tsv", tsv(COLUMNS, rows))
        write_atomically(self.dir / f"changes-{date}.jsonl", jsonl(KEYS, rows))

    async def _file_level(self, s: dict[str, Any], before: str, ctx: Context) -> None:
        """The file-level diff of one volume, if the earlier stats file is still there."""
        from stages.diff.local import diff_files  # noqa: PLC0415 - compiled code
        from stages.diff.writer import describe as describe_diff  # noqa: PLC0415
        from stages.wrstat.naming import discover  # noqa: PLC0415

        where = self.wrstat_dir or Path(s["file"]).parent
        earlier = [f for f in discover(where, every=True)
                   if f.volume == s["volume"] and f.date == before]  # fmt: skip
        if not earlier:
            ctx.log.info("%s: the stats file of %s is no longer in %s; no file-level diff",
                         s["volume"], before, where)  # fmt: skip
            return
        out = self.dir / f"file-changes-{s['volume']}-{s['date']}"
        report, rejected = await asyncio.to_thread(
            diff_files, earlier[0].path, Path(s["file"]), out, self.largest, ctx)  # fmt: skip
        ctx.log.info("%s; lists in %s", describe_diff(report, rejected), out)


def _rows(s: dict[str, Any], d: Diff) -> list[tuple[Any, ...]]:
    """The changed rows of one volume: groups then users, the largest changes first."""
    since = f"{d.before[:4]}-{d.before[4:6]}-{d.before[6:]}"
    names, users = s["group_names"], s["user_names"]
    out = []
    for kind, t in (("group", d.groups), ("user", d.users)):
        cols = [t[n].tolist() for n in ("usage_before", "usage_after", "change", "percent",
                                         "files_before", "files_after", "status")]  # fmt: skip
        keys = t["gid"].tolist(), (t["base"] if kind == "group" else t["uid"]).tolist()
        rows = []
        for gid, other, (ub, ua, ch, pc, fb, fa, st) in zip(*keys, zip(*cols, strict=True),
                                                             strict=True):  # fmt: skip
            if st not in (CHANGED, APPEARED, VANISHED):
                continue
            base, uid = (other, None) if kind == "group" else (None, other)
            user = None if uid is None else users.get(str(uid), str(uid))
            rows.append((d.volume, since, kind, base, names.get(str(gid), str(gid)), gid, user,
                         uid, ub, ua, ch, None if math.isnan(pc) else pc, fb, fa, st))  # fmt: skip
        rows.sort(key=lambda r: (-abs(r[10]), str(r[3]), r[5], r[7] or 0))
        out += rows
    return out
