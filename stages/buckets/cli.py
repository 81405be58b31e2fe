"""``pipeline graph``: sender-log graphs on demand; ``pipeline buckets update``: the cache."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
from pathlib import Path
from typing import Any

GRAPH_EPILOG = """\
From the hour cache (pipeline buckets update, from cron) and, with --logs, what the logs
hold past the last update (the current hour), for each client: per-minute mean latency,
bytes per minute and errors per minute over the window, with the largest latency (when,
which file), the mean, the smallest, the files over the threshold and their share, and the
total bytes and errors. The figures per minute go to a CSV file beside the picture.

examples:
  pipeline gen metpx logs --hours 24 --lines 100000
  pipeline buckets update logs --cache cache              # every hour from cron
  pipeline graph cmc-ftp --cache cache --logs logs        # the last 24 hours
  pipeline graph cmc-ftp nws-bulletins --hours 6 --end "2026-11-29 06:00" --out six.png
"""

UPDATE_EPILOG = """\
Reads every sender log under LOGS (<machine>/<tx|rx>_<client>.log, and rotated
<...>.log.<suffix>) from where the last update stopped, keeps its records per hour in the
cache (<client>/<YYYYMMDD>/<tx|rx>/<machine>_<HH>.npz) with the hour's minutes counted
beside them (files over --threshold among them), back-fills the hours that passed with
nothing, notices logs that were renamed, replaced or truncated, and only then saves the
state (state.json). Lines that cannot be read are listed in the cache's rejects.tsv.

examples:
  pipeline buckets update /var/log/px --cache /srv/px-stats --tz America/Montreal
"""


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cache", default=os.environ.get("BUCKET_CACHE") or "bucket-cache",
                   help="the hour cache (default: $BUCKET_CACHE, else bucket-cache)")  # fmt: skip
    p.add_argument("--tz", default=os.environ.get("LOG_TZ") or "America/Montreal",
                   help="the time zone of the log times (default: $LOG_TZ, else "
                   "America/Montreal); reception stamps are UTC")  # fmt: skip


def add_graph(sub: Any) -> None:
    p = sub.add_parser(
        "graph",
        help="per-minute latency, bytes and errors of clients, as a PNG",
        description="Graph sender logs for some clients over a window.",
        epilog=GRAPH_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("clients", nargs="+", help="the clients to graph")
    _common(p)
    p.add_argument("--logs", help="also read the logs here past the last update")
    p.add_argument("--hours", type=float, default=24.0, help="the window (default 24 hours)")
    p.add_argument("--end", help="the window's end, 'YYYY-MM-DD HH:MM' UTC (default: now)")
    p.add_argument("--threshold", type=float, default=15.0,
                   help="count the files over this latency, seconds (default 15)")  # fmt: skip
    p.add_argument("--out", default="graph.png", help="the PNG (the CSV goes beside it)")
    p.set_defaults(handler=graph)


def add_buckets(sub: Any) -> None:
    p = sub.add_parser("buckets", help="the hour cache of sender logs (update it from cron)")
    verbs = p.add_subparsers(dest="verb", metavar="VERB")
    verbs.required = True
    u = verbs.add_parser("update", help="read the logs' new lines into the hour cache",
                         description="Bring the hour cache up to date with the logs.",
                         epilog=UPDATE_EPILOG,
                         formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    u.add_argument("logs", help="the folder of sender logs (or one log)")
    _common(u)
    u.add_argument("--threshold", type=float, default=15.0,
                   help="count each minute's files over this latency, seconds (default 15, "
                   "MetPX's); a graph asking for another counts from the records")  # fmt: skip
    u.set_defaults(handler=update)


def update(args: argparse.Namespace) -> int:
    from stages.buckets.cache import CacheError  # noqa: PLC0415
    from stages.buckets.update import update as run_update  # noqa: PLC0415

    logs = Path(args.logs)
    if not logs.exists():
        print(f"pipeline buckets update: no logs at {logs}", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    try:
        done = run_update(logs, Path(args.cache), args.tz, threshold=args.threshold)
    except CacheError as exc:
        print(f"pipeline buckets update: {exc}", file=sys.stderr)
        return 1
    for note in done.notes:
        print(f"note: {note}", file=sys.stderr)
    print(f"{done.lines:,} new lines, {done.records:,} records kept in {done.hours:,} hour "
          f"file(s) of {args.cache}, {done.rejected:,} rejected"
          + (f" (see {Path(args.cache) / 'rejects.tsv'})" if done.rejected else "")
          + f"; {time.perf_counter() - t0:.1f} s")  # fmt: skip
    return 0


def window(hours: float, end: str | None) -> tuple[int, int]:
    """``[start, end)`` in epoch seconds, at whole minutes."""
    if end:
        try:
            when = dt.datetime.fromisoformat(end)
        except ValueError:
            raise ValueError(
                f"--end {end!r} is not a time; write e.g. '2026-11-29 06:00'"
            ) from None
        stop = int((when if when.tzinfo else when.replace(tzinfo=dt.UTC)).timestamp())
    else:
        stop = int(time.time())
    stop = -(-stop // 60) * 60
    return stop - int(hours * 3600) // 60 * 60, stop


def graph(args: argparse.Namespace) -> int:
    from stages.buckets.graph import draw, figures, write_csv  # noqa: PLC0415
    from stages.buckets.view import minutes_of  # noqa: PLC0415

    t0 = time.perf_counter()
    try:
        start, end = window(args.hours, args.end)
    except ValueError as exc:
        print(f"pipeline graph: {exc}", file=sys.stderr)
        return 2
    panels, missing = [], []
    for client in args.clients:
        logs = Path(args.logs) if args.logs else None
        view = minutes_of(Path(args.cache), client, start, end, logs, args.tz, args.threshold)
        missing += [f"{client} {h:%Y-%m-%d %H}:00" for h in view.missing]
        panels.append(figures(client, view.tables, start, end, view.name))
    out = Path(args.out)
    draw(panels, out, start, end, args.threshold)
    csv = write_csv(panels, out.with_suffix(".csv"))
    files = sum(int(p.window["latency_count"]) for p in panels)
    print(f"{out} and {csv}: {len(panels)} client(s), {files:,} files, "
          f"{time.perf_counter() - t0:.2f} s")  # fmt: skip
    if missing:
        shown = ", ".join(missing[:4]) + (
            f" and {len(missing) - 4} more" if len(missing) > 4 else ""
        )
        print(f"pipeline graph: no records cached for {shown}; run pipeline buckets update "
              "(or give --logs)", file=sys.stderr)  # fmt: skip
    return 0
