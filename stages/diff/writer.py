"""The ``DiffWriter`` stage of ``pipeline diff``: the replicas' parts put together, checked
and written.

In ``out``: ``created.tsv``, ``deleted.tsv``, ``modified.tsv``, ``moved.tsv`` (the change
lists, ``stages.diff.listing.LIST_COLUMNS``), ``groups.tsv`` (per group: entries and bytes
created and deleted, entries modified and how much they grew, entries moved),
``largest-created.tsv``, the aggregate diff as ``aggregate-groups.tsv`` and
``aggregate-users.tsv`` when the tallies came along, and the whole report as
``report.json`` and ``report.rpt``. Before anything is written, every line of both files
is checked to be counted once: as an entry matched, or as a rejected line (listed in
``rejects.tsv``).
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import Columns, Context
from stages.diff.aggregate import FIGURES, Snapshot, diff, groups_table, users_table
from stages.diff.entries import NEW, OLD
from stages.diff.match import GROUP_FIGURES, KIND_NAMES, LARGEST, add_groups
from stages.diff.report import Report, export_report, save_snapshot
from stages.outfiles import cell, tsv, write_atomically
from stages.wrstat.escape import go_escape
from stages.wrstat.report import REJECT_COLUMNS, Totals, outside

GROUP_COLUMNS = (
    "GID",
    "Created",
    "Created (bytes)",
    "Deleted",
    "Deleted (bytes)",
    "Modified",
    "Grown (bytes)",
    "Moved",
)
LARGEST_COLUMNS = ("Path", "Size", "UID", "GID", "Mtime")
#: the headers of an aggregate diff's figures, after its key columns
_FIGURE_COLUMNS = ("Usage Before", "Usage After", "Files Before", "Files After",
                   "Change (bytes)", "Change (%)", "Status")  # fmt: skip
AGG_GROUP_COLUMNS = ("GID", "Top Level Path", *_FIGURE_COLUMNS)
AGG_USER_COLUMNS = ("UID", "GID", *_FIGURE_COLUMNS)


def rows(cols: Columns, names: tuple[str, ...]) -> list[tuple[Any, ...]]:
    values = [cols[n].tolist() for n in names]
    return [tuple(cell(v) for v in row) for row in zip(*values, strict=True)]


class DiffWriter:
    """Put the file-level diff together (see the module docstring)."""

    def __init__(
        self, out: str, old: str, new: str, largest: int = 20, snapshots: bool = False
    ) -> None:
        self.out, self.old, self.new = Path(out), old, new
        self.largest = largest
        self.snapshots = snapshots
        self.notes: dict[int, dict[str, Any]] = {}
        self.rejects: list[dict[str, Any]] = []
        self.parts: list[dict[str, Any]] = []
        self.totals = Totals()
        self.tallied = False

    def process(self, item: Any, ctx: Context) -> None:
        kind = item.get("kind")
        if kind == "filediff":
            self.parts.append(item)
        elif kind == "file":
            self.notes[item["side"]] = item
        elif kind == "reject":
            self.rejects.append(item)
        elif kind == "partial":
            self.totals.add(item)
            self.tallied = True

    def finish(self, ctx: Context) -> None:
        counts = {k: sum(p["counts"][k] for p in self.parts) for k in self.parts[0]["counts"]}
        check_balance(self.notes, self.rejects, counts)
        self.out.mkdir(parents=True, exist_ok=True)
        lists = self._lists()
        peaks = [p["peak_rss"] for p in sorted(self.parts, key=lambda p: p["replica"])]
        report = file_report(self.notes, counts, add_groups([p["groups"] for p in self.parts]),
                             self._largest(), lists, {"peak_rss": peaks})  # fmt: skip
        if self.tallied:
            before, after = self._snapshot(self.notes[OLD]), self._snapshot(self.notes[NEW])
            report.aggregate = diff(before, after)
            if self.snapshots:
                for snap in (before, after):
                    save_snapshot(snap, self.out / f"{snap.run_id}.snap")
        write_file_report(report, self.rejects, self.out)
        ctx.log.info("%s; peak memory of a matching replica %.0f MB; written to %s",
                     describe(report, len(self.rejects)), max(peaks) / 1e6, self.out)  # fmt: skip

    def _lists(self) -> dict[str, Path]:
        """Each kind's parts, one after the other, under one header."""
        out = {}
        for name in KIND_NAMES.values():
            final = self.out / f"{name}.tsv"
            tmp = final.with_name(f".{final.name}.tmp")
            with tmp.open("wb") as f:
                for k, part in enumerate(sorted(p["parts"][name] for p in self.parts)):
                    with open(part, "rb") as src:
                        head = src.readline()
                        if k == 0:
                            f.write(head)
                        shutil.copyfileobj(src, f, 1 << 20)
                    Path(part).unlink()
            tmp.replace(final)
            out[name] = final
        return out

    def _largest(self) -> Columns:
        parts = [p["largest"] for p in self.parts if len(p["largest"])]
        if not parts:
            return Columns(
                path=np.array([], dtype=object),
                size=np.array([], np.int64),
                uid=np.array([], np.uint32),
                gid=np.array([], np.uint32),
                mtime=np.array([], np.int64),
            )
        allc = Columns({n: np.concatenate([p[n] for p in parts]) for n in parts[0].names})
        order = np.lexsort((allc["path"].astype(str), -allc["size"]))[: self.largest]
        return allc.select(order)

    def _snapshot(self, note: dict[str, Any]) -> Snapshot:
        file = note["file"]
        groups = [
            (gid, outside(note["mount"]) if base is None else go_escape(base), u, f)
            for (src, gid, base), (u, f, _) in self.totals.groups().items()
            if src == file
        ]
        users = [
            (uid, gid, u, f)
            for (src, uid, gid), (u, f, _) in self.totals.users.items()
            if src == file
        ]
        return Snapshot(note["volume"], _date(note), groups_table(groups), users_table(users))


def check_balance(notes: dict[int, dict[str, Any]], rejects: list[dict[str, Any]],
                  counts: dict[str, int]) -> None:  # fmt: skip
    """Every line of both files is an entry compared or a rejected line, once."""
    for side, name in ((OLD, "old"), (NEW, "new")):
        note = notes.get(side)
        if note is None:
            raise RuntimeError(f"the {name} file was never read to its end; this is a bug")
        bad = sum(1 for r in rejects if r["side"] == side)
        used = counts[f"{name}_entries"]
        if used + bad != note["lines"]:
            msg = (f"{note['file']}: {note['lines']:,} lines read, but {used:,} compared "
                   f"and {bad:,} rejected; this is a bug, please report it")  # fmt: skip
            raise RuntimeError(msg)


def file_report(
    notes: dict[int, dict[str, Any]],
    counts: dict[str, int],
    groups: Columns,
    largest: Columns,
    lists: dict[str, Path],
    meta: dict[str, Any],
) -> Report:
    """The report of a file-level diff, named after its two snapshots."""
    old, new = notes[OLD], notes[NEW]
    files = {"counts": counts, "groups": groups, "largest": largest,
             "lists": {k: p.name for k, p in lists.items()}}  # fmt: skip
    return Report(f"{_run_id(old)} vs {_run_id(new)}", _run_id(old), _run_id(new), files=files,
                  meta={"old": old["file"], "new": new["file"], **meta})  # fmt: skip


def write_file_report(report: Report, rejects: list[dict[str, Any]], out: Path) -> None:
    """``groups.tsv``, ``largest-created.tsv``, ``rejects.tsv``, and ``write_aggregate``."""
    assert report.files is not None
    groups, largest = report.files["groups"], report.files["largest"]
    write_atomically(out / "groups.tsv", tsv(GROUP_COLUMNS, rows(groups, ("gid", *GROUP_FIGURES))))
    write_atomically(out / "largest-created.tsv", tsv(LARGEST_COLUMNS, rows(largest, LARGEST)))
    bad = sorted((r["file"], r["line"], r["reason"], r["raw"]) for r in rejects)
    write_atomically(out / "rejects.tsv", tsv(REJECT_COLUMNS, bad))
    write_aggregate(report, out)


def describe(report: Report, rejected: int) -> str:
    """One line: what a file-level diff found."""
    c = report.files["counts"] if report.files else {}
    kinds = ", ".join(f"{c[k]:,} {k}" for k in ("created", "deleted", "modified", "moved",
                                                 "unchanged"))  # fmt: skip
    return f"{report.id}: {kinds}; {rejected:,} rejected lines"


def write_aggregate(report: Report, out: Path) -> None:
    """The aggregate diff's tables (if the report has one), and the report itself."""
    if (a := report.aggregate) is not None:
        write_atomically(
            out / "aggregate-groups.tsv",
            tsv(AGG_GROUP_COLUMNS, rows(a.groups, ("gid", "base", *FIGURES))),
        )
        write_atomically(
            out / "aggregate-users.tsv",
            tsv(AGG_USER_COLUMNS, rows(a.users, ("uid", "gid", *FIGURES))),
        )
    export_report(report, out / "report.json")
    export_report(report, out / "report.rpt")


def _date(note: dict[str, Any]) -> str:
    return f"{dt.datetime.fromtimestamp(note['snapshot'], dt.UTC):%Y%m%d}"


def _run_id(note: dict[str, Any]) -> str:
    return f"{note['volume']}@{_date(note)}"
