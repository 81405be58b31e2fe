"""``pipeline history GROUP``: a group's kept usage, snapshot by snapshot."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

from stages.wrstat.history import HistoryError
from stages.wrstat.plots import binary
from stages.wrstat.stores import default_file, is_url, open_store

EPILOG = """\
The history is what the wrstat reports keep at every run: per volume, group, base directory
and snapshot date, the bytes used, the quota and the warning level.

examples:
  pipeline history hgi                          every snapshot of group hgi
  pipeline history 1313 --volume scratch117     by gid, on one volume
  pipeline history hgi --json                   as JSON, one object per row
  HISTORY_DB=/srv/usage/history.sqlite pipeline history hgi
  HISTORY_DB_PASSWORD_FILE=~/.usage-db pipeline history hgi --db mysql://usage@db/lustre_usage
"""


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "history",
        help="a group's usage history, from the wrstat reports' history store",
        description="Show a group's kept usage, snapshot by snapshot.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("group", help="group name, or gid")
    p.add_argument("--volume", help="only this volume (e.g. scratch117)")
    p.add_argument(
        "--db",
        default=os.environ.get("HISTORY_DB")
        or str(default_file(Path(os.environ.get("REPORT_DIR") or "reports"))),
        help="the history: a SQLite file or a mysql://USER@HOST[:PORT]/DATABASE URL "
        "(default: $HISTORY_DB, else $REPORT_DIR/history.sqlite, else reports/history.sqlite)",
    )
    p.add_argument("--json", action="store_true", help="print JSON lines")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if not is_url(args.db) and not Path(args.db).is_file():
        print(f"pipeline history: no history at {args.db}; give --db or set HISTORY_DB "
              "(the wrstat reports write it)", file=sys.stderr)  # fmt: skip
        return 2
    group: str | int = int(args.group) if args.group.isdigit() else args.group
    try:
        rows = asyncio.run(_rows(args.db, group, args.volume))
    except HistoryError as exc:
        print(f"pipeline history: {exc}", file=sys.stderr)
        return 1
    if not rows:
        where = f" on {args.volume}" if args.volume else ""
        print(f"pipeline history: nothing kept for group {args.group}{where}", file=sys.stderr)
        return 1
    if args.json:
        for r in rows:
            print(json.dumps(r))
        return 0
    print(f"{'SNAPSHOT':<10} {'VOLUME':<12} {'USED':>10} {'QUOTA':>10} {'FULL':>5} "
          f"{'FILES':>10} {'WARNING':<8}  BASE DIRECTORY")  # fmt: skip
    for r in rows:
        quota = r["quota"]
        full = f"{r['used'] / quota:.0%}" if quota else "-"
        print(f"{r['snapshot']:<10} {r['volume']:<12} {binary(r['used']):>10} "
              f"{binary(quota) if quota else '-':>10} {full:>5} {r['files']:>10,} "
              f"{r['warning'] or '-':<8}  {r['base_directory']}")  # fmt: skip
    return 0


async def _rows(db: str, group: str | int, volume: str | None) -> list[dict[str, Any]]:
    store = open_store(db, Path("."))
    await store.connect()
    try:
        return await store.group_history(group, volume)
    finally:
        await store.close()
