"""A file-level diff of two stats files in one process, for a stage that has them both at
hand (``stages.diff.changes``); ``pipeline diff`` spreads the same work over replicas.

Memory is about 60 bytes per line of the two files together (the entries), plus the
paths of the moved entries.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline import Context
from stages.diff.entries import NEW, OLD, Store, entries
from stages.diff.filediff import list_and_count
from stages.diff.listing import chunks
from stages.diff.match import match
from stages.diff.report import Report
from stages.diff.writer import check_balance, file_report, write_file_report


def diff_files(
    old: Path, new: Path, out: Path, largest: int = 20, ctx: Context | None = None
) -> tuple[Report, int]:
    """Compare ``old`` with ``new`` and write the lists and reports into ``out``, as
    ``pipeline diff --files-only`` does; returns the report and the rejected lines. An
    ``old`` file cut short is reported to ``ctx`` (``new`` is the run's own input, which
    the run's reader has reported on already)."""
    from stages.wrstat.parse import Workspace, parse, rejects  # noqa: PLC0415 - compiled

    store = Store()
    notes: dict[int, dict[str, Any]] = {}
    bad: list[dict[str, Any]] = []
    n_old = 0
    work = Workspace()
    for side, file in ((OLD, old), (NEW, new)):
        for item in chunks(file, ctx=ctx if side == OLD else None):
            if item["kind"] == "file":
                notes[side] = {**item, "side": side}
            elif item["kind"] == "reject":
                bad.append({**item, "side": side})
            else:
                data, enc, ncols, line = item["data"], item["encoding"], item["ncols"], item["line"]
                parsed = parse(data, enc, ncols, work)  # type: ignore[arg-type]
                store.add(side, entries(parsed, line, side))  # type: ignore[arg-type]
                bad += [{**r, "side": side}
                        for r in rejects(parsed, data, str(file), line, ncols, enc)]  # type: ignore[arg-type]  # fmt: skip
    rows, n_old = store.rows()
    m = match(rows, n_old)
    del rows
    check_balance(notes, bad, m.counts())
    out.mkdir(parents=True, exist_ok=True)
    written, found = list_and_count(m, old, new, out, largest)
    report = file_report(notes, found["counts"], found["groups"], found["largest"], written, {})
    write_file_report(report, bad, out)
    return report, len(bad)
