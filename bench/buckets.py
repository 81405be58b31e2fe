"""``python -m bench buckets``: a day of MetPX logs through the log source and the bucket
aggregator, against a plain single-process loop, and a 24-hour graph from the cache.

On a generated day of logs (``pipeline gen metpx``: one client on two machines, tx and rx,
``--lines`` per file), in the same run:

* ``pipeline run examples/metpx.yaml``: the logs read by two replicas, every minute of
  every (client, direction) with every statistic, written as TSV; timed start to exit
  (median of ``--runs``);
* the plain loop: each line matched by a regular expression, its time read with
  ``datetime.strptime`` and converted from the log's zone, values gathered per minute in
  lists, then each minute's statistics from its sorted values;
* ``pipeline buckets update`` of the day into an hour cache, then ``pipeline graph`` of the
  24 hours of the client: as a command from cold, and in one process after its imports
  (the second of two calls).

Requirements: the graph under 1 s in-process and under 2 s as a cold command.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from zoneinfo import ZoneInfo

from bench.wrstat import CACHE, REPO

TZ = "America/Montreal"
END = "2026-11-29 00:00"  # local: the window is the day before
LINE = re.compile(r"^(\S+ \S+),(\d{3}) \[(INFO|ERROR)\] \((\d+) Bytes\) \S+ (\S+)")


def sample_day(lines: int) -> Path:
    folder = CACHE / f"metpx-{lines}"
    if not list(folder.glob("*/*.log")):
        print(f"generating a day of logs in {folder} (once; it is kept)...", flush=True)
        subprocess.run([sys.executable, "-m", "pipeline", "gen", "metpx", str(folder), "--lines",
                        str(lines), "--clients", "cmc-ftp", "--end", END, "--tz", TZ],
                       check=True, cwd=REPO, capture_output=True)  # fmt: skip
    return folder


def timed(command: list[str], cwd: Path, env: dict[str, str] | None = None) -> tuple[float, str]:
    t0 = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env={**os.environ, **(env or {})},
                          capture_output=True, text=True, check=False)  # fmt: skip
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr}")
    return seconds, done.stdout + done.stderr


def plain_loop(logs: Path) -> tuple[float, int, int]:
    """(seconds, lines, minutes with records) of the plain single-process loop."""
    t0 = time.perf_counter()
    zone = ZoneInfo(TZ)
    minutes: dict[tuple[str, str, int], list[tuple[float, int, int]]] = defaultdict(list)
    n = 0
    for log in sorted(logs.glob("*/*.log")):
        direction, client = log.name[:2], log.name[3:-4]
        with log.open("rb") as f:
            for raw in f:
                n += 1
                line = raw.decode("utf-8", "replace")
                m = LINE.match(line)
                if not m or "Bytes/sec" in line or " Segment " in line or "SEND TIMEOUT" in line:
                    continue
                try:
                    local = dt.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S")
                    when = local.replace(tzinfo=zone).timestamp() + int(m.group(2)) / 1000
                    latency = math.nan
                    fields = m.group(5).split(":")
                    if direction == "tx" and len(fields) >= 7:
                        stamp = dt.datetime.strptime(fields[6][:14], "%Y%m%d%H%M%S")
                        latency = when - stamp.replace(tzinfo=dt.UTC).timestamp()
                except ValueError:  # a malformed line: rejected
                    continue
                minutes[(client, direction, int(when) // 60)].append(
                    (latency, int(m.group(4)), m.group(3) == "ERROR"))  # fmt: skip
    for values in minutes.values():
        for k in range(3):
            xs = sorted(v[k] for v in values if not (isinstance(v[k], float) and math.isnan(v[k])))
            if xs:
                _ = (xs[0], xs[-1], sum(xs) / len(xs), statistics.median(xs),
                     statistics.quantiles(xs, n=100, method="inclusive") if len(xs) > 1 else xs,
                     sum(1 for x in xs if x > 15))  # fmt: skip
    return time.perf_counter() - t0, n, len(minutes)


IN_PROCESS = """
import sys, time, argparse
from stages.buckets.cli import graph
args = argparse.Namespace(clients=["cmc-ftp"], cache=sys.argv[1], logs=None, tz="{tz}",
                          hours=24.0, end=sys.argv[2], threshold=15.0, out=sys.argv[3])
graph(args)  # the first call loads what it uses
t0 = time.perf_counter()
graph(args)
print("IN_PROCESS", time.perf_counter() - t0)
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench buckets",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--lines", type=int, default=1_000_000, help="lines per log file")
    parser.add_argument("--runs", type=int, default=3, help="timed runs; the median counts")
    args = parser.parse_args(argv)
    logs = sample_day(args.lines)
    total = sum(1 for p in logs.glob("*/*.log") for _ in p.open("rb"))
    print(f"input: {logs} ({total:,} lines in {len(list(logs.glob('*/*.log')))} files)")
    py = sys.executable
    with tempfile.TemporaryDirectory(prefix="bench-buckets-") as tmp:
        work = Path(tmp)
        env = {"LOG_DIR": str(logs), "LOG_TZ": TZ, "REPORT_DIR": str(work / "reports")}
        command = [
            py,
            "-m",
            "pipeline",
            "run",
            str(REPO / "examples/metpx.yaml"),
            "--progress",
            "off",
        ]
        timed(command, work, env)  # compiled code built and cached once, not timed
        seconds = statistics.median(timed(command, work, env)[0] for _ in range(args.runs))
        base_seconds, base_lines, base_minutes = plain_loop(logs)
        cache = work / "cache"
        up, out = timed([py, "-m", "pipeline", "buckets", "update", str(logs), "--cache",
                         str(cache), "--tz", TZ], work)  # fmt: skip
        end = "2026-11-29 05:00"  # END in UTC
        graph = [py, "-m", "pipeline", "graph", "cmc-ftp", "--cache", str(cache), "--end", end,
                 "--out", str(work / "g.png")]  # fmt: skip
        timed(graph, work)
        cold = statistics.median(timed(graph, work)[0] for _ in range(3))
        _, printed = timed([py, "-c", IN_PROCESS.format(tz=TZ), str(cache), end,
                            str(work / "h.png")], REPO)  # fmt: skip
        warm = float(printed.split("IN_PROCESS")[1].split()[0])
    rate, base_rate = total / seconds, base_lines / base_seconds
    print(f"pipeline run (log source, buckets, report)  {seconds:6.2f} s  "
          f"{rate / 1e6:5.2f} M lines/s  (median of {args.runs})")  # fmt: skip
    print(f"plain single-process loop                    {base_seconds:6.2f} s  "
          f"{base_rate / 1e6:5.2f} M lines/s  ({base_minutes:,} minutes with records)")  # fmt: skip
    print(f"speed-up over the plain loop: {rate / base_rate:.2f}x")
    print(f"pipeline buckets update of the day: {up:.2f} s ({out.strip().splitlines()[-1]})")
    fast, quick = warm < 1.0, cold < 2.0
    print(f"24-hour graph of one client from the cache: in-process {warm:.2f} s [need < 1 s: "
          f"{'PASS' if fast else 'FAIL'}]; cold command {cold:.2f} s [need < 2 s: "
          f"{'PASS' if quick else 'FAIL'}]")  # fmt: skip
    return 0 if fast and quick else 1
