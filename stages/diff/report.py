"""Diff reports: made, kept in memory by name, exported and imported as JSON or binary.

A report holds an aggregate diff (``stages.diff.aggregate``), a file-level summary (counts,
per-group figures, the largest files created, the names of the change lists), or both.
``.json`` files are plain JSON; ``.rpt`` files are ``stages.diff.snapfile`` reports, one
section per table. Either imports back to an equal report.

``Manager`` keeps named runs (aggregate snapshots) and reports in memory, as ExposureScout's
analysis manager does: ``load`` and ``save`` runs, ``make_diff`` (default id "A vs B"; an
id in use is refused), ``export_report`` and ``import_report``, and ``drop`` /
``drop_report`` to free the memory of one no longer needed.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import Columns
from stages.diff import snapfile
from stages.diff.aggregate import FIGURES, Diff, Snapshot, diff
from stages.diff.match import GROUP_FIGURES, LARGEST
from stages.outfiles import cell


class ReportError(ValueError):
    """A report or run cannot be made, found or read; the message says why."""


@dataclass
class Report:
    id: str
    first: str
    second: str
    aggregate: Diff | None = None
    #: counts, groups (Columns), largest (Columns), lists ({kind: file name})
    files: dict[str, Any] | None = None
    meta: dict[str, Any] = field(default_factory=dict)


def table_json(cols: Columns) -> list[dict[str, Any]]:
    names = cols.names
    values = [cols[n].tolist() for n in names]
    return [
        {n: cell(v) for n, v in zip(names, row, strict=True)} for row in zip(*values, strict=True)
    ]


_TYPES = {
    "gid": np.uint32,
    "uid": np.uint32,
    "base": object,
    "status": object,
    "path": object,
    "percent": np.float64,
}


def table_from_json(rows: list[dict[str, Any]], names: list[str]) -> Columns:
    cols: dict[str, Any] = {}
    for n in names:
        vals = [r[n] for r in rows]
        if n == "percent":
            vals = [float("nan") if v is None else v for v in vals]
        cols[n] = np.array(vals, dtype=_TYPES.get(n, np.int64))
    return Columns(cols)


_AGG_COLUMNS = {"groups": ["gid", "base"], "users": ["uid", "gid"]}
_FILE_TABLES = {
    "groups": ["gid", *GROUP_FIGURES],
    "largest": list(LARGEST),
}
_LISTS = ("appeared_groups", "vanished_groups", "appeared_users", "vanished_users")


def to_json(r: Report) -> dict[str, Any]:
    out: dict[str, Any] = {"id": r.id, "first": r.first, "second": r.second, "meta": r.meta}
    if r.aggregate is not None:
        a = r.aggregate
        out["aggregate"] = {
            "volume": a.volume,
            "before": a.before,
            "after": a.after,
            "groups": table_json(a.groups),
            "users": table_json(a.users),
            **{k: getattr(a, k) for k in _LISTS},
        }
    if r.files is not None:
        f = r.files
        out["files"] = {
            "counts": f["counts"],
            "lists": f.get("lists", {}),
            **{k: table_json(f[k]) for k in _FILE_TABLES},
        }
    return out


def from_json(d: dict[str, Any]) -> Report:
    r = Report(d["id"], d["first"], d["second"], meta=d.get("meta", {}))
    if (a := d.get("aggregate")) is not None:
        tables = {k: table_from_json(a[k], [*cols, *FIGURES]) for k, cols in _AGG_COLUMNS.items()}
        r.aggregate = Diff(
            a["volume"],
            a["before"],
            a["after"],
            tables["groups"],
            tables["users"],
            *(a[k] for k in _LISTS),
        )
    if (f := d.get("files")) is not None:
        r.files = {
            "counts": f["counts"],
            "lists": f.get("lists", {}),
            **{k: table_from_json(f[k], cols) for k, cols in _FILE_TABLES.items()},
        }
    return r


def _sections(r: Report) -> list[snapfile.Section]:
    meta: dict[str, Any] = {"id": r.id, "first": r.first, "second": r.second, "meta": r.meta}
    out = []
    if r.aggregate is not None:
        a = r.aggregate
        meta["aggregate"] = {
            "volume": a.volume,
            "before": a.before,
            "after": a.after,
            **{k: getattr(a, k) for k in _LISTS},
        }
        out += [snapfile.Section("groups", a.groups), snapfile.Section("users", a.users)]
    if r.files is not None:
        meta["files"] = {"counts": r.files["counts"], "lists": r.files.get("lists", {})}
        out += [snapfile.Section(f"files.{k}", r.files[k]) for k in _FILE_TABLES]
    return [snapfile.Section("report", meta), *out]


def _from_sections(s: dict[str, Any]) -> Report:
    meta = s["report"]
    r = Report(meta["id"], meta["first"], meta["second"], meta=meta.get("meta", {}))
    if (a := meta.get("aggregate")) is not None:
        r.aggregate = Diff(
            a["volume"], a["before"], a["after"], s["groups"], s["users"], *(a[k] for k in _LISTS)
        )
    if (f := meta.get("files")) is not None:
        r.files = {**f, **{k: s[f"files.{k}"] for k in _FILE_TABLES}}
    return r


def export_report(r: Report, path: str | os.PathLike[str]) -> Path:
    """Write ``r`` as JSON (a ``.json`` path) or binary (any other)."""
    p = Path(path)
    if p.suffix == ".json":
        tmp = p.with_name(f".{p.name}.tmp")
        tmp.write_text(json.dumps(to_json(r), indent=1, ensure_ascii=False) + "\n")
        tmp.replace(p)
    else:
        snapfile.write(p, snapfile.REPORT, _sections(r))
    return p


def import_report(path: str | os.PathLike[str]) -> Report:
    p = Path(path)
    if p.suffix == ".json":
        try:
            return from_json(json.loads(p.read_text(encoding="utf-8")))
        except (ValueError, KeyError, TypeError) as exc:
            msg = f"{p}: not a diff report ({exc}); give a report written by pipeline diff"
            raise ReportError(msg) from None
    return _from_sections(snapfile.read(p, snapfile.REPORT))


def save_snapshot(s: Snapshot, path: str | os.PathLike[str]) -> Path:
    meta = {"volume": s.volume, "date": s.date, "meta": s.meta}
    snapfile.write(
        path,
        snapfile.SNAPSHOT,
        [
            snapfile.Section("snapshot", meta),
            snapfile.Section("groups", s.groups),
            snapfile.Section("users", s.users),
        ],
    )
    return Path(path)


def load_snapshot(path: str | os.PathLike[str]) -> Snapshot:
    s = snapfile.read(path, snapfile.SNAPSHOT)
    meta = s["snapshot"]
    assert isinstance(meta, dict)
    groups, users = s["groups"], s["users"]
    assert isinstance(groups, Columns) and isinstance(users, Columns)
    return Snapshot(meta["volume"], meta["date"], groups, users, meta.get("meta", {}))


class Manager:
    """Named runs and reports in memory (see the module docstring)."""

    def __init__(self) -> None:
        self.runs: dict[str, Snapshot] = {}
        self.reports: dict[str, Report] = {}

    def add(self, snap: Snapshot, run_id: str | None = None) -> str:
        rid = run_id or snap.run_id
        if rid in self.runs:
            raise ReportError(f"a run named {rid!r} is loaded already; drop it first")
        self.runs[rid] = snap
        return rid

    def load(self, path: str | os.PathLike[str], run_id: str | None = None) -> str:
        """Load a saved snapshot as a run; returns its id (default: VOLUME@DATE)."""
        return self.add(load_snapshot(path), run_id)

    def save(self, run_id: str, path: str | os.PathLike[str]) -> Path:
        return save_snapshot(self._run(run_id), path)

    def drop(self, run_id: str) -> None:
        self._run(run_id)
        del self.runs[run_id]

    def _run(self, run_id: str) -> Snapshot:
        try:
            return self.runs[run_id]
        except KeyError:
            have = ", ".join(self.runs) or "none"
            raise ReportError(f"no run {run_id!r} in memory (loaded: {have})") from None

    def make_diff(self, first: str, second: str, report_id: str | None = None) -> Report:
        rid = report_id or f"{first} vs {second}"
        if rid in self.reports:
            raise ReportError(f"a report named {rid!r} exists already; drop it or name another")
        a, b = self._run(first), self._run(second)
        if a.volume != b.volume:
            msg = f"runs {first!r} and {second!r} are of different volumes ({a.volume}, {b.volume})"
            raise ReportError(msg)
        r = Report(rid, first, second, aggregate=diff(a, b))
        self.reports[rid] = r
        return r

    def report(self, report_id: str) -> Report:
        try:
            return self.reports[report_id]
        except KeyError:
            have = ", ".join(self.reports) or "none"
            raise ReportError(f"no report {report_id!r} in memory (made: {have})") from None

    def export_report(self, report_id: str, path: str | os.PathLike[str]) -> Path:
        return export_report(self.report(report_id), path)

    def import_report(self, path: str | os.PathLike[str]) -> str:
        r = import_report(path)
        if r.id in self.reports:
            raise ReportError(f"a report named {r.id!r} exists already; drop it first")
        self.reports[r.id] = r
        return r.id

    def drop_report(self, report_id: str) -> None:
        self.report(report_id)
        del self.reports[report_id]
