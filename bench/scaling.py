"""``python -m bench scaling``: the wrstat reports while stage ``usage`` is scaled 1 -> 2 -> 1
replicas every few seconds, against the same run unscaled, in the same run of this script.

On one generated stats file (30 million lines by default, so a run lasts long enough to
be scaled several times):

* unscaled: ``pipeline run`` of the default topology with one ``usage`` replica, timed from
  start to exit (the median of ``--runs`` runs);
* scaled: the same, while ``usage`` is scaled to 2 and back to 1 over and over, every
  ``--every`` seconds, through the frame's control endpoint (``pipeline scale``), timed the
  same way;
* for reference, unscaled with two ``usage`` replicas from the start.

Requirements: the scaled run loses no more than 10% of the unscaled run's throughput, and
every report it writes is byte for byte the one the unscaled run wrote.
"""

from __future__ import annotations

import argparse
import filecmp
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.wrstat import REPO, sample_file
from pipeline.errors import ControlCode, ControlError
from pipeline.remote import RemoteFrame


def run(path: Path, reports: Path, replicas: int, every: float | None) -> tuple[float, int, int]:
    """One ``pipeline run``: (seconds from start to exit, rescales done, lines read).
    ``every``: scale usage 1 <-> 2 that often while it runs (None: leave it alone)."""
    reports.parent.mkdir(parents=True, exist_ok=True)
    registry = reports.parent / "registry"
    # the reports, not their shipping (bench ingress times that): no ingress to wait for
    env = {**os.environ, "WRSTAT_DIR": str(path), "REPORT_DIR": str(reports),
           "USAGE_REPLICAS": str(replicas), "PIPELINE_REGISTRY": str(registry),
           "INGRESS_URL": "off"}  # fmt: skip
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "run", str(REPO / "topology.yaml"), "--progress",
         "off"],
        cwd=reports.parent, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    ended: list[float] = []
    output: list[str] = []

    def wait() -> None:  # the exit is timed here, whatever the scaling loop is doing
        output.append(proc.communicate()[1])
        ended.append(time.perf_counter())

    waiter = threading.Thread(target=wait)
    waiter.start()
    rescales = _keep_scaling(waiter, registry, every) if every is not None else 0
    waiter.join()
    if proc.returncode != 0:
        raise SystemExit(f"pipeline run failed ({proc.returncode}):\n{output[0]}")
    found = re.search(r"written to .*: ([\d,]+) lines", output[0])
    lines = int(found.group(1).replace(",", "")) if found else 0
    return ended[0] - t0, rescales, lines


def _keep_scaling(waiter: threading.Thread, registry: Path, every: float) -> int:
    os.environ["PIPELINE_REGISTRY"] = str(registry)
    frame = None
    while frame is None and waiter.is_alive():
        try:
            frame = RemoteFrame.find(timeout=2)
        except ControlError:
            time.sleep(0.05)
    done, target = 0, 2
    while frame is not None and waiter.is_alive():
        time.sleep(every)
        try:
            frame.request("scale", stage="usage", replicas=target)
            frame.wait_scaled("usage", target, timeout=60)
        except ControlError as exc:
            if exc.code in (ControlCode.NOT_RUNNING, ControlCode.UNREACHABLE):
                break  # the input is read: the run is ending
            raise
        done += 1
        target = 3 - target
    if frame is not None:
        frame.close()
    return done


def same_reports(a: Path, b: Path) -> list[str]:
    """Files that differ between two report folders (or are in only one); the history
    store is not a report (it notes when it was written)."""
    cmp = filecmp.dircmp(a, b, ignore=["history.sqlite"])
    diff = list(cmp.left_only) + list(cmp.right_only)
    _, mismatch, errors = filecmp.cmpfiles(a, b, cmp.common_files, shallow=False)
    return diff + mismatch + errors


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench scaling",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--lines", type=int, default=30_000_000, help="lines in the file")
    parser.add_argument("--every", type=float, default=2.0, help="seconds between rescales")
    parser.add_argument("--runs", type=int, default=3, help="runs of each kind; medians count")
    args = parser.parse_args(argv)
    path = sample_file(args.lines)
    subprocess.run([sys.executable, "-c", "from stages.wrstat.tally import warm; warm()"],
                   check=True, cwd=REPO)  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="bench-scaling-") as tmp:
        root = Path(tmp)
        plain, scaled, two, rescales = [], [], [], []
        for i in range(args.runs):  # interleaved, so a slow spell of the machine hits all
            seconds, _, lines = run(path, root / f"plain{i}" / "reports", 1, None)
            plain.append(seconds)
            seconds, n, _ = run(path, root / f"scaled{i}" / "reports", 1, args.every)
            scaled.append(seconds)
            rescales.append(n)
            two.append(run(path, root / f"two{i}" / "reports", 2, None)[0])
        differ = [
            f"{kind}{i}: {name}"
            for i in range(args.runs)
            for kind in ("scaled", "two")
            for name in same_reports(root / "plain0" / "reports", root / f"{kind}{i}" / "reports")
        ]
    p, s, t = statistics.median(plain), statistics.median(scaled), statistics.median(two)
    print(f"lines: {lines:,}; usage scaled 1 <-> 2 every {args.every:g}s "
          f"({', '.join(map(str, rescales))} rescales in the scaled runs)")  # fmt: skip
    print(f"unscaled, 1 usage replica   {p:6.2f} s  {lines / p / 1e6:5.2f} M lines/s")
    print(f"scaled 1 -> 2 -> 1 ...      {s:6.2f} s  {lines / s / 1e6:5.2f} M lines/s")
    print(f"unscaled, 2 usage replicas  {t:6.2f} s  {lines / t / 1e6:5.2f} M lines/s  "
          "(for reference)")  # fmt: skip
    ratio = p / s
    kept = ratio >= 0.9
    print(f"scaled vs unscaled throughput: {ratio:.2f}x   [need >= 0.90x (no more than 10% "
          f"lost): {'PASS' if kept else 'FAIL'}]")  # fmt: skip
    print(f"reports identical in every run: {'yes' if not differ else 'NO'}   "
          f"[{'PASS' if not differ else 'FAIL: ' + ', '.join(differ[:5])}]")  # fmt: skip
    return 0 if kept and not differ and min(rescales) >= 2 else 1
