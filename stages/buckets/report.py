"""The ``BucketReport`` stage: the buckets of every key, written as TSV and JSON lines.

In ``dir``: ``<name>.tsv`` and ``<name>.jsonl``, a row per key and bucket (the key
columns, ``start`` as an ISO time in UTC, ``records``, then ``<field>_<statistic>`` for
each field: ``stages.buckets.stats.STATS``; times as ISO times in UTC, ``-`` where a bucket
is empty), sorted by key and time; and ``<name>-rejects.tsv``: File, Line, Reason, Raw for
every line that could not be used.

Before writing, the counts are checked: every line of every file is kept, left out (a line
of a kind not counted) or rejected; every kept record is in a bucket or outside the window.
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import Columns, Context
from stages.outfiles import cell, jsonl, tsv, write_atomically

REJECT_COLUMNS = ("File", "Line", "Reason", "Raw")


def iso(t: int | float, unit: str = "s") -> str | None:
    """An epoch time as ISO 8601 in UTC (milliseconds shown for ``ms``)."""
    if t is None or (isinstance(t, float) and math.isnan(t)) or t < 0:
        return None
    if unit == "ms":
        when = dt.datetime.fromtimestamp(t / 1000, dt.UTC)
        return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(t) % 1000:03d}Z"
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class BucketReport:
    """Write the buckets (see the module docstring). ``unit``: of the records' times."""

    def __init__(self, dir: str, name: str = "buckets", unit: str = "s") -> None:
        self.dir = Path(dir)
        self.name = name
        self.unit = unit
        self.parts: list[Columns] = []
        self.files: list[dict[str, Any]] = []
        self.bucketed: list[dict[str, Any]] = []
        self.rejects: list[dict[str, Any]] = []

    def process(self, item: Any, ctx: Context) -> None:
        if isinstance(item, Columns):
            self.parts.append(item)
            return
        kind = item.get("kind")
        if kind == "file":
            self.files.append(item)
        elif kind == "bucketed":
            self.bucketed.append(item)
        elif kind == "reject":
            self.rejects.append(item)

    def _check(self) -> None:
        """Every line is kept, left out or rejected; every record kept is bucketed or outside."""
        for f in self.files:
            if f["kept"] + f["skipped"] + f["rejected"] != f["lines"]:
                msg = (f"{f['file']}: {f['lines']:,} lines, but {f['kept']:,} kept, "
                       f"{f['skipped']:,} left out and {f['rejected']:,} rejected; "
                       "this is a bug")  # fmt: skip
                raise RuntimeError(msg)
        kept = sum(f["kept"] for f in self.files)
        got = sum(b["records"] for b in self.bucketed)
        if self.files and kept != got:
            raise RuntimeError(f"{kept:,} records read but {got:,} bucketed; this is a bug")
        rejected = sum(f["rejected"] for f in self.files)
        if self.files and rejected != len(self.rejects):
            msg = f"{rejected:,} lines rejected but {len(self.rejects):,} listed; this is a bug"
            raise RuntimeError(msg)

    def finish(self, ctx: Context) -> None:
        self._check()
        self.dir.mkdir(parents=True, exist_ok=True)
        if self.parts:
            self._write(Columns({n: np.concatenate([p[n] for p in self.parts])
                                 for n in self.parts[0].names}))  # fmt: skip
        rows = sorted((r["file"], r["line"], r["reason"], r["raw"]) for r in self.rejects)
        write_atomically(self.dir / f"{self.name}-rejects.tsv", tsv(REJECT_COLUMNS, rows))
        outside = sum(b["outside"] for b in self.bucketed)
        ctx.log.info("%s bucket rows in %s; %s lines rejected%s", f"{sum(map(len, self.parts)):,}",
                     self.dir / f"{self.name}.tsv", f"{len(rows):,}",
                     f"; {outside:,} records outside the window" if outside else "")  # fmt: skip

    def _write(self, c: Columns) -> None:
        names = list(c.names)
        stat_start = names.index("start")
        keys = names[:stat_start]
        order = np.lexsort([c["start"], *(c[k].astype(str) for k in reversed(keys))])
        values = {n: c[n][order].tolist() for n in names}
        for n in names:
            if n == "start":
                values[n] = [iso(t) for t in values[n]]
            elif n.endswith("_time"):
                values[n] = [iso(t, self.unit) for t in values[n]]
            else:
                values[n] = [cell(v) for v in values[n]]
        rows = list(zip(*(values[n] for n in names), strict=True))
        write_atomically(self.dir / f"{self.name}.tsv", tsv(names, rows))
        write_atomically(self.dir / f"{self.name}.jsonl", jsonl(names, rows))
