"""``python -m bench ingress``: tarballs packaged and shipped to the local ingress server,
concurrent uploads against one at a time, in the same run.

A sliced collector gives ``--tarballs`` windows of CSV rows (``--rows`` each, about 60
bytes a row), so each window is packaged into a tarball of its own (config, status and
manifest beside it) and queued in the outbox; then every tarball is POSTed to a
``pipeline ingress-server`` started for the run (a fresh store each time), which checks
each one member by member and stores it. Each setting is timed end to end (collecting,
packaging and shipping, which overlap: a tarball is sent as soon as it is queued) and for
the shipping alone (the same tarballs, built once, queued in a fresh outbox and sent),
twice (the median counts), the settings taking turns:

* uploads one at a time, and ``--concurrency`` at once, to the server as it is;
* the same with ``--latency`` seconds added to each answer by the server (``--delay``),
  as an ingress across a wide-area network answers.

Every tarball must arrive exactly once (the server's count is checked).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import hashlib
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench.wrstat import REPO
from stages.ingress.gather import Gatherer
from stages.ingress.outbox import Outbox
from stages.ingress.registry import Registry
from stages.ingress.shipper import Retry, Shipper

UNTIL = dt.datetime(2026, 11, 30, tzinfo=dt.UTC)


def registry(tarballs: int, rows: int) -> Registry:
    r = Registry()

    @r.register("config", "1.0", config=True)
    def config(**kw: Any) -> dict[str, Any]:
        return {"bench": "ingress", "until": kw["until"].isoformat()}

    def hourly(key: str, last: dt.datetime, **kw: Any) -> list[tuple[dt.datetime, dt.datetime]]:
        hour = dt.timedelta(hours=1)
        return [(UNTIL - (tarballs - i) * hour, UNTIL - (tarballs - i - 1) * hour)
                for i in range(tarballs)]  # fmt: skip

    @r.register("usage_rows", "1.0", format="csv", slicing=hourly)
    def usage_rows(**kw: Any) -> Path:
        path = Path(kw["full_path"]) / f"rows-{kw['since']:%Y%m%d%H}.csv"
        stamp = f"{kw['since']:%Y-%m-%dT%H}"
        with path.open("w", encoding="utf-8") as f:
            f.write("Window,Volume,Group,GID,Usage,Files\n")
            f.writelines(f"{stamp},scratch{i % 7},group{i % 613},{1000 + i % 613},"
                         f"{i * 7919 % 10**12},{i % 100003}\n" for i in range(rows))  # fmt: skip
        return path

    return r


def start_server(store: Path, latency: float) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "ingress-server", "--bind", "127.0.0.1:0",
         "--store", str(store), "--delay", str(latency)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "listening on " not in line:
        proc.kill()
        raise SystemExit(f"the ingress server did not start: {line!r}")
    return proc, line.split("listening on ")[1].split(" ")[0]


def _gather(
    work: Path, reg: Registry, latency: float, concurrency: int, tarballs: int
) -> tuple[float, int]:
    """Seconds of one gathering into ``work/outbox`` shipped to a fresh server, and the
    bytes it stored; every tarball must arrive, once."""
    store = work / "store"
    proc, url = start_server(store, latency)
    try:
        shipper = Shipper(url, retry=Retry(attempts=3), concurrency=concurrency, timeout=60)
        g = Gatherer(reg, work / "outbox", shipper, max_data_size=200 << 20)
        t0 = time.perf_counter()
        done = asyncio.run(g.run(until=UNTIL, report_dir=work))
        seconds = time.perf_counter() - t0
        health = json.load(urllib.request.urlopen(url.split("/api/")[0] + "/health"))
    finally:
        proc.terminate()
        proc.wait()
        if proc.stdout:
            proc.stdout.close()
    if len(done.delivered) != tarballs or health["stored"] != tarballs:
        raise SystemExit(f"{len(done.delivered)} delivered and {health['stored']} stored of "
                         f"{tarballs}: {[r.describe() for r in done.replies][:3]}")  # fmt: skip
    return seconds, sum(p.stat().st_size for p in store.glob("*.tar.gz"))


def nothing_new() -> Registry:
    """A registry whose collectors have nothing: a gathering only sends what waits."""
    r = Registry()
    r.register("config", "1.0", config=True)(lambda **kw: {"bench": "ingress"})
    r.register("usage_rows", "1.0", format="csv")(lambda **kw: None)
    return r


def built_once(folder: Path, tarballs: int, rows: int) -> tuple[list[Path], float]:
    """The run's tarballs, built once (a dry run), and the seconds it took."""
    g = Gatherer(registry(tarballs, rows), folder, Shipper("http://127.0.0.1:9"), 200 << 20)
    t0 = time.perf_counter()
    done = asyncio.run(g.run(until=UNTIL, dry_run=True, report_dir=folder))
    return done.built, time.perf_counter() - t0


def one_run(
    work: Path, tarballs: int, rows: int, concurrency: int, latency: float, ready: list[Path]
) -> tuple[float, float, int]:
    """(seconds end to end, seconds shipping the ``ready`` tarballs alone, bytes shipped)."""
    total, size = _gather(work / "all", registry(tarballs, rows), latency, concurrency,
                          tarballs)  # fmt: skip
    box = Outbox(work / "ship" / "outbox")
    for p in ready:  # queued as a gathering queues them, then shipped alone
        copy = box.work / p.name
        box.work.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(p, copy)
        box.put(copy, {"sha256": hashlib.sha256(p.read_bytes()).hexdigest(), "collections": []})
    ship, _ = _gather(work / "ship", nothing_new(), latency, concurrency, tarballs)
    return total, ship, size


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench ingress",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--tarballs", type=int, default=48, help="tarballs a run (48)")
    parser.add_argument("--rows", type=int, default=20_000, help="CSV rows a tarball (20,000)")
    parser.add_argument("--concurrency", type=int, default=8, help="uploads at once (8)")
    parser.add_argument("--latency", type=float, default=0.05,
                        help="seconds added to each answer in the second pair (0.05)")  # fmt: skip
    parser.add_argument("--runs", type=int, default=2, help="runs of each setting (2)")
    args = parser.parse_args(argv)
    results: dict[tuple[float, int], list[tuple[float, float, int]]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-ingress-") as tmp:
        ready, packaging = built_once(Path(tmp) / "built", args.tarballs, args.rows)
        for run in range(args.runs):
            for latency in (0.0, args.latency):
                order = (1, args.concurrency) if run % 2 == 0 else (args.concurrency, 1)
                for conc in order:
                    work = Path(tmp) / f"{run}-{latency}-{conc}"
                    work.mkdir()
                    results.setdefault((latency, conc), []).append(
                        one_run(work, args.tarballs, args.rows, conc, latency, ready)
                    )
    n = args.tarballs
    print(
        f"{n} tarballs a run, {args.rows:,} CSV rows each; median of {args.runs} runs; "
        f"collecting and packaging them alone: {packaging:.2f} s ({n / packaging:.1f}/s)"
    )
    print(f"{'answer latency':>14} {'uploads at once':>15} {'end to end':>12} {'tarballs/s':>10} "
          f"{'shipping':>9} {'tarballs/s':>10}")  # fmt: skip
    rates = {}
    for (latency, conc), got in sorted(results.items()):
        total = statistics.median(r[0] for r in got)
        ship = statistics.median(r[1] for r in got)
        rates[(latency, conc)] = (n / total, n / ship)
        print(f"{latency * 1000:>11.0f} ms {conc:>15} {total:>10.2f} s {n / total:>10.1f} "
              f"{ship:>7.2f} s {n / ship:>10.1f}")  # fmt: skip
    mb = statistics.median(r[2] for r in results[(0.0, 1)]) / 1e6
    print(f"({mb:.1f} MB of tarballs a run)")
    for latency in (0.0, args.latency):
        seq, par = rates[(latency, 1)], rates[(latency, args.concurrency)]
        print(f"{args.concurrency} at once vs one at a time, {latency * 1000:.0f} ms answers: "
              f"{par[0] / seq[0]:.2f}x end to end, {par[1] / seq[1]:.2f}x shipping")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
