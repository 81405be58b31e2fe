"""``python -m bench wrstat``: the wrstat reports end to end, against lurge's way and the floor.

One generated stats file of 10 million lines (wrstat's base64 era, as lurge read it), and
in the same run:

* ``pipeline run`` of the default topology on it, timed from start to exit (the median of
  three runs); then one more run for the peak memory of all its processes together
  (proportional set size, so pages the processes share are counted once), sampled every
  0.1 s;
* the lurge-style loop: ``gzip.open`` in text mode, split on tab, base64-decode the path,
  one dict of integer sums keyed by gid;
* decompression alone, with the decompressor the pipeline uses, the way it uses it: the
  floor for one reader.

Requirements: at least 3x the lurge-style loop, and under 500 MB of memory.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

from stages.gz import zlib_module as _zlib

CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "pipeline-bench"
REPO = Path(__file__).resolve().parent.parent
MB = 1e6


def sample_file(lines: int) -> Path:
    """A stats file of about ``lines`` lines, generated once and kept in the cache."""
    folder = CACHE / f"wrstat-{lines}"
    found = list(folder.glob("*.stats.gz"))
    if found:
        return found[0]
    print(f"generating {lines:,} lines in {folder} (once; it is kept)...", flush=True)
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, "-m", "pipeline", "gen", "wrstat", str(folder), "--lines", str(lines),
         "--volumes", "scratch117=v3", "--date", "20261101"],
        check=True, cwd=REPO,
    )  # fmt: skip
    return next(folder.glob("*.stats.gz"))


def lurge_style(path: Path) -> tuple[int, float]:
    """lurge's loop, reduced to its core: (lines, seconds)."""
    t0 = time.perf_counter()
    sums: dict[str, int] = {}
    n = 0
    with gzip.open(path, "rt") as f:
        for line in f:
            parts = line.split("\t")
            base64.b64decode(parts[0])
            sums[parts[3]] = sums.get(parts[3], 0) + int(parts[1])
            n += 1
    return n, time.perf_counter() - t0


def decompress_only(path: Path) -> float:
    """Decompression alone, the way ``read`` does it (isal, output in 4 MiB pieces)."""
    t0 = time.perf_counter()
    d = _zlib.decompressobj(31)
    with path.open("rb") as f:
        while block := f.read(4 << 20):
            while block:
                d.decompress(block, 4 << 20)
                block = d.unconsumed_tail
    return time.perf_counter() - t0


class PeakMemory:
    """Samples the summed PSS of a process and all its descendants."""

    def __init__(self, pid: int, every: float = 0.1) -> None:
        self.root = psutil.Process(pid)
        self.every = every
        self.peak = 0
        self.breakdown: list[tuple[str, int]] = []  # (process title, PSS) at the peak
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _tree(self) -> list[psutil.Process]:
        try:
            return [self.root, *self.root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def _run(self) -> None:
        while not self.done.is_set():
            parts = []
            for p in self._tree():
                try:
                    parts.append((" ".join(p.cmdline())[:60], p.memory_full_info().pss))
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    continue
            total = sum(pss for _, pss in parts)
            if total > self.peak:
                self.peak, self.breakdown = total, parts
            time.sleep(self.every)

    def stop(self) -> int:
        self.done.set()
        self.thread.join()
        return self.peak


def pipeline_run(
    path: Path, reports: Path, replicas: int, memory: bool, topology: Path | None = None
) -> tuple[float, PeakMemory | None, str]:
    """``pipeline run`` on ``path``: (seconds, its memory samples if ``memory``, its last
    output line). Sampling memory costs CPU, so the timed run does not sample."""
    # the reports, not their shipping (bench ingress times that): no ingress to wait for
    env = {**os.environ, "WRSTAT_DIR": str(path), "REPORT_DIR": str(reports),
           "USAGE_REPLICAS": str(replicas), "INGRESS_URL": "off"}  # fmt: skip
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "run", str(topology or REPO / "topology.yaml")],
        cwd=reports.parent, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    sampler = PeakMemory(proc.pid) if memory else None
    _, err = proc.communicate()
    seconds = time.perf_counter() - t0
    if sampler:
        sampler.stop()
    if proc.returncode != 0:
        raise SystemExit(f"pipeline run failed ({proc.returncode}):\n{err}")
    return seconds, sampler, err.strip().splitlines()[-1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench wrstat",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--lines", type=int, default=10_000_000, help="lines in the file")
    parser.add_argument("--replicas", type=int, default=2, help="usage replicas (default 2)")
    parser.add_argument("--runs", type=int, default=3, help="timed runs; the median counts")
    args = parser.parse_args(argv)
    path = sample_file(args.lines)
    size = path.stat().st_size
    print(f"input: {path} ({size / MB:,.0f} MB compressed)")
    # The parsers are compiled once per installation and cached: not part of a run's time.
    subprocess.run([sys.executable, "-c", "from stages.wrstat.tally import warm; warm()"],
                   check=True, cwd=REPO)  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="bench-wrstat-") as tmp:
        runs = [pipeline_run(path, Path(tmp) / "reports", args.replicas, False)
                for _ in range(args.runs)]  # fmt: skip
        seconds, _, last = sorted(runs, key=lambda r: r[0])[len(runs) // 2]
        _, memory, _ = pipeline_run(path, Path(tmp) / "reports", args.replicas, True)
    assert memory is not None
    n, lurge_seconds = lurge_style(path)
    floor = decompress_only(path)
    rate, lurge_rate, floor_rate = n / seconds, n / lurge_seconds, n / floor
    ratio = rate / lurge_rate
    peak = memory.peak
    fast, small = ratio >= 3.0, peak < 500 * MB
    print(f"lines: {n:,}")
    print(f"pipeline run         {seconds:6.2f} s  {rate / 1e6:5.2f} M lines/s  "
          f"(median of {args.runs}; {last})")  # fmt: skip
    print(f"lurge-style loop     {lurge_seconds:6.2f} s  {lurge_rate / 1e6:5.2f} M lines/s")
    print(f"decompression alone  {floor:6.2f} s  {floor_rate / 1e6:5.2f} M lines/s  (the floor)")
    print(f"speed-up over the lurge-style loop: {ratio:.2f}x   [need >= 3x: "
          f"{'PASS' if fast else 'FAIL'}; aiming for 5x]")  # fmt: skip
    print(f"pipeline run vs the floor: {seconds / floor:.2f}x the time of decompression alone")
    print(f"peak memory, all processes (PSS): {peak / MB:,.0f} MB   [need < 500 MB: "
          f"{'PASS' if small else 'FAIL'}]")  # fmt: skip
    for title, pss in sorted(memory.breakdown, key=lambda x: -x[1]):
        print(f"    {pss / MB:5.0f} MB  {title}")
    return 0 if fast and small else 1
