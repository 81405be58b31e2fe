"""``pipeline diff OLD NEW``: what changed between two snapshots of a volume."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import logging
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stages.wrstat.stores import default_file, is_url

if TYPE_CHECKING:
    from stages.diff.aggregate import Snapshot

EPILOG = """\
OLD and NEW are two wrstat stats files of one volume (stats.gz, as wrstat writes them), two
saved aggregate snapshots (.snap files, from --snapshots), or two snapshots kept in the
usage history as VOLUME@YYYYMMDD (see --db).

Two stats files: a file-level diff, entries matched by (device, inode) across --replicas
processes, each holding its share of the entries; and, unless --files-only, the aggregate
diff per (gid, base directory) and per (uid, gid). In --out:
  created.tsv deleted.tsv modified.tsv moved.tsv   every entry that changed, with its path
  groups.tsv                per group: entries and bytes created and deleted, growth, moves
  largest-created.tsv       the largest files created
  aggregate-groups.tsv aggregate-users.tsv         usage before and after, change, status
  report.json report.rpt    the whole report, as JSON and in binary (pipeline diff --show)
  rejects.tsv               lines of either file that could not be read
Two snapshots (.snap or VOLUME@YYYYMMDD): the aggregate diff alone.

An entry whose type changed (a file where a symlink was) is a delete and a create; the
same inode under a new path is a move; a hard link's added or removed names are creates
and deletes. Bytes are counted as the usage reports count them, size // nlink.

examples:
  pipeline diff old/stats.gz new/stats.gz --out changes
  pipeline diff a.stats.gz b.stats.gz --replicas 4 --files-only
  pipeline diff a.stats.gz b.stats.gz --snapshots      # also save both as .snap files
  pipeline diff changes/scratch123@20261101.snap changes/scratch123@20261102.snap
  pipeline diff scratch123@20261101 scratch123@20261108 --db reports/history.sqlite
  pipeline diff --show changes/report.rpt              # a saved report, as JSON
"""


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "diff",
        help="what changed between two snapshots of a volume (files and usage)",
        description="Compare two snapshots of a volume: two wrstat stats files, two saved "
        "snapshots, or two snapshots kept in the usage history.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("old", nargs="?", help="the earlier stats file, .snap file or VOLUME@YYYYMMDD")
    p.add_argument("new", nargs="?", help="the later stats file, .snap file or VOLUME@YYYYMMDD")
    p.add_argument("--out", default="diff", help="folder for the results (default: diff)")
    p.add_argument(
        "--replicas",
        type=int,
        default=2,
        help="processes matching entries, each holding 1/N of them (default 2)",
    )
    p.add_argument(
        "--largest",
        type=int,
        default=20,
        help="how many of the largest files created to list (default 20)",
    )
    p.add_argument("--files-only", action="store_true", help="no aggregate diff")
    p.add_argument(
        "--snapshots",
        action="store_true",
        help="save both sides' aggregate snapshots as .snap files in --out",
    )
    p.add_argument(
        "--db",
        default=os.environ.get("HISTORY_DB")
        or str(default_file(Path(os.environ.get("REPORT_DIR") or "reports"))),
        help="the history, for VOLUME@YYYYMMDD snapshots: a SQLite file or a "
        "mysql://USER@HOST[:PORT]/DATABASE URL (default: $HISTORY_DB, else "
        "$REPORT_DIR/history.sqlite, else reports/history.sqlite)",
    )
    p.add_argument("--show", metavar="REPORT", help="print a saved report (.rpt or .json) as JSON")
    p.add_argument(
        "--progress",
        default="auto",
        choices=["auto", "on", "off"],
        help="a live view while the diff runs (default: on a terminal)",
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from pipeline.errors import UsageError  # noqa: PLC0415

    if args.show:
        return _show(args.show)
    if not args.old or not args.new:
        raise UsageError("give OLD and NEW (two stats files or two .snap files), or --show")
    if all(KEPT.match(x) and not Path(x).exists() for x in (args.old, args.new)):
        return _kept(args.old, args.new, args)
    old, new = Path(args.old), Path(args.new)
    for p in (old, new):
        if not p.is_file():
            raise UsageError(f"{p} is not a file; give two stats files or two .snap files")
    kinds = {_is_snapshot(old), _is_snapshot(new)}
    if kinds == {True}:
        from stages.diff.report import load_snapshot  # noqa: PLC0415

        return _aggregate(lambda: (load_snapshot(old), load_snapshot(new)), args)
    if kinds != {False}:
        raise UsageError(
            f"{old} and {new}: give two stats files or two .snap files, not one of each"
        )
    if args.replicas < 1:
        raise UsageError(f"--replicas must be at least 1, got {args.replicas}")
    from stages.wrstat.naming import from_name  # noqa: PLC0415

    named = [from_name(p) for p in (old, new)]
    if named[0] and named[1] and named[0].volume != named[1].volume:
        raise UsageError(
            f"{old} and {new} are of different volumes ({named[0].volume}, "
            f"{named[1].volume}); a diff compares two snapshots of one volume"
        )
    return _files(args, old, new)


#: a snapshot kept in the history: VOLUME@YYYYMMDD
KEPT = re.compile(r"^([^@/]+)@(\d{8})$")


def _is_snapshot(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(8) == b"PLSNAP\r\n"


def _show(path: str) -> int:
    import json  # noqa: PLC0415

    from stages.diff import snapfile  # noqa: PLC0415
    from stages.diff.report import ReportError, import_report, to_json  # noqa: PLC0415

    try:
        report = import_report(path)
    except (ReportError, snapfile.SnapFileError, OSError) as exc:
        print(f"pipeline diff: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(to_json(report), indent=1, ensure_ascii=False))
    return 0


def _aggregate(load: Callable[[], tuple[Snapshot, Snapshot]], args: argparse.Namespace) -> int:
    """The aggregate diff of two snapshots ``load`` gives."""
    from stages.diff import snapfile  # noqa: PLC0415
    from stages.diff.report import Manager, ReportError, save_snapshot  # noqa: PLC0415
    from stages.diff.writer import write_aggregate  # noqa: PLC0415
    from stages.wrstat.history import HistoryError  # noqa: PLC0415

    m = Manager()
    out = Path(args.out)
    try:
        a, b = (m.add(s) for s in load())
        report = m.make_diff(a, b)
    except (ReportError, snapfile.SnapFileError, HistoryError) as exc:
        print(f"pipeline diff: {exc}", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    write_aggregate(report, out)
    if args.snapshots:
        for run_id in (a, b):
            save_snapshot(m.runs[run_id], out / f"{run_id}.snap")
    totals = report.aggregate.totals() if report.aggregate else {}
    print(
        f"{report.id}: usage {totals.get('usage_before', 0):,} -> "
        f"{totals.get('usage_after', 0):,} bytes; written to {out}"
    )
    return 0


def _kept(old: str, new: str, args: argparse.Namespace) -> int:
    """The aggregate diff of two snapshots kept in the history."""
    from stages.diff.aggregate import Snapshot, groups_table, users_table  # noqa: PLC0415
    from stages.diff.report import ReportError  # noqa: PLC0415
    from stages.wrstat.stores import describe, open_store  # noqa: PLC0415

    async def read() -> tuple[Snapshot, Snapshot]:
        store = open_store(args.db, Path("."))
        try:
            out = []
            for ref in (old, new):
                m = KEPT.match(ref)
                assert m is not None
                volume, day = m.group(1), dt.datetime.strptime(m.group(2), "%Y%m%d").date()
                kept = await store.previous(volume, day, exactly=True)
                if kept is None:
                    msg = (f"no snapshot of {volume} on {day} in the history ({describe(store)}); "
                           "pipeline history GROUP --db ... lists the kept dates")  # fmt: skip
                    raise ReportError(msg)
                out.append(Snapshot(volume, m.group(2), groups_table(kept.groups),
                                    users_table(kept.users)))  # fmt: skip
            return out[0], out[1]
        finally:
            await store.close()

    if not is_url(args.db) and not Path(args.db).is_file():
        print(f"pipeline diff: no history at {args.db}; give --db or set HISTORY_DB",
              file=sys.stderr)  # fmt: skip
        return 2
    return _aggregate(lambda: asyncio.run(read()), args)


def topology(
    old: Path, new: Path, out: Path, replicas: int, largest: int, aggregate: bool, snapshots: bool
) -> dict[str, Any]:
    """The file-level diff as a topology."""
    files = {"old": str(old.resolve()), "new": str(new.resolve())}
    return {
        "name": "diff",
        "stages": [
            {
                "name": "read",
                "run": "stages.diff.filestage:read_pair",
                "replicas": 2,
                "params": {**files, "aggregate": aggregate},
                "batch": {"size": 1},
                "backpressure": {"credit": 4},
                "next": "match",
            },
            {
                "name": "match",
                "run": "stages.diff.filestage:FileDiff",
                "replicas": replicas,
                "route": {"key": "inode"},
                "scalable": False,
                "next": "write",
                "params": {**files, "out": str(out.resolve()), "largest": largest},
            },
            {
                "name": "write",
                "run": "stages.diff.writer:DiffWriter",
                "params": {
                    **files,
                    "out": str(out.resolve()),
                    "largest": largest,
                    "snapshots": snapshots,
                },
            },
        ],
    }


def _files(args: argparse.Namespace, old: Path, new: Path) -> int:
    from pipeline.supervisor import Supervisor  # noqa: PLC0415
    from pipeline.topology import build_topology  # noqa: PLC0415

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S"
    )
    data = topology(
        old, new, Path(args.out), args.replicas, args.largest, not args.files_only, args.snapshots
    )
    progress = args.progress == "on" or (args.progress == "auto" and sys.stderr.isatty())
    report = Supervisor(build_topology(data), progress=progress).run()
    for line in report.lines():
        print(line, file=sys.stderr)
    return int(report.exit_code)
