"""``python -m bench diff``: a file-level diff of two 10-million-line stats files, against a
plain-Python dict-based diff, in the same run.

Two generated snapshots of one volume a day apart (wrstat's base64 era; ``pipeline gen
wrstat --history 1 --churn 0.02``: files created, deleted, moved, touched, retyped and hard
links renamed, and every file grown a little), and in the same run:

* ``pipeline diff OLD NEW --files-only --replicas 2``, timed from start to exit (the median
  of ``--runs`` runs), its change lists written in full; the peak resident memory of each
  matching replica (its own figure, reported in ``report.json``) and, sampled every 0.1 s
  in one more run, the peak memory of all its processes together (PSS);
* the dict-based diff: ``gzip.open``, split on tab, base64-decode the path, one dict per
  snapshot from (device, inode) to its entries, then the same rules as ``pipeline diff``
  (paths first, then leftovers in line order), the changes collected in lists; timed the
  same way, once.

Both must find the same number of each kind of change. Requirements: at least 3x the
dict-based diff's lines per second, and under 1.5 GB per replica with 2 replicas.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.wrstat import CACHE, MB, REPO, PeakMemory


def generate(folder: Path, lines: int, churn: float, quiet: bool = False) -> tuple[Path, Path]:
    """Two snapshots of one volume (wrstat's base64 era) a day apart, the older one with
    ``churn``: ``pipeline gen wrstat --history 1 --churn``."""
    command = [sys.executable, "-m", "pipeline", "gen", "wrstat", str(folder), "--lines",
               str(lines), "--volumes", "scratch117=v3", "--date", "20261101", "--history",
               "1", "--churn", str(churn)]  # fmt: skip
    subprocess.run(command, check=True, cwd=REPO, capture_output=quiet)
    old, new = sorted(folder.glob("*.stats.gz"))
    return old, new


def sample_pair(lines: int, churn: float) -> tuple[Path, Path]:
    """``generate``, once: the files are kept in the cache."""
    folder = CACHE / f"diff-{lines}-{churn}"
    found = sorted(folder.glob("*.stats.gz"))
    if len(found) == 2:
        return found[0], found[1]
    print(f"generating 2 x {lines:,} lines in {folder} (once; it is kept)...", flush=True)
    folder.mkdir(parents=True, exist_ok=True)
    return generate(folder, lines, churn)


def pipeline_diff(
    old: Path, new: Path, out: Path, replicas: int, memory: bool
) -> tuple[float, dict[str, object], PeakMemory | None]:
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pipeline",
            "diff",
            str(old),
            str(new),
            "--out",
            str(out),
            "--replicas",
            str(replicas),
            "--files-only",
            "--progress",
            "off",
        ],
        cwd=out.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    sampler = PeakMemory(proc.pid) if memory else None
    _, err = proc.communicate()
    seconds = time.perf_counter() - t0
    if sampler:
        sampler.stop()
    if proc.returncode != 0:
        raise SystemExit(f"pipeline diff failed ({proc.returncode}):\n{err}")
    return seconds, json.loads((out / "report.json").read_text()), sampler


def _entries(path: Path) -> tuple[dict[tuple[int, int], list[tuple[object, ...]]], int]:
    by_id: dict[tuple[int, int], list[tuple[object, ...]]] = {}
    n = 0
    with gzip.open(path, "rb") as f:
        for n, line in enumerate(f, 1):
            p = line.rstrip(b"\n").split(b"\t")
            e = (n, base64.b64decode(p[0]), p[7], int(p[1]), int(p[5]), int(p[3]), int(p[9]))
            key = (int(p[10]), int(p[8]))
            found = by_id.get(key)
            if found is None:
                by_id[key] = [e]
            else:
                found.append(e)
    return by_id, n


def dict_diff(old: Path, new: Path) -> tuple[float, int, dict[str, int]]:
    """The plain-Python diff: (seconds, lines, counts)."""
    t0 = time.perf_counter()
    a, n_old = _entries(old)
    b, n_new = _entries(new)
    created: list[object] = []
    deleted: list[object] = []
    modified: list[object] = []
    moved: list[object] = []
    unchanged = 0
    for key in a.keys() | b.keys():
        olds, news = a.get(key, []), b.get(key, [])
        if not olds or not news or olds[0][2] != news[0][2]:
            deleted += olds
            created += news
            continue
        left = list(news)
        left_old = []
        for o in olds:
            same = next((x for x in left if x[1].rstrip(b"/") == o[1].rstrip(b"/")), None)  # type: ignore[attr-defined]
            if same is None:
                left_old.append(o)
            else:
                left.remove(same)
                if (o[3], o[4]) == (same[3], same[4]):
                    unchanged += 1
                else:
                    modified.append((o, same))
        moved += zip(left_old, left, strict=False)
        deleted += left_old[len(left) :]
        created += left[len(left_old) :]
    counts = {
        "created": len(created),
        "deleted": len(deleted),
        "modified": len(modified),
        "moved": len(moved),
        "unchanged": unchanged,
    }
    return time.perf_counter() - t0, n_old + n_new, counts


def warm_up(tmp: Path) -> None:
    """A diff of two tiny files: the compiled code is built once per installation and
    cached, which is not part of a run's time."""
    a, b = generate(tmp / "tiny", 200, 0.02, quiet=True)
    command = [sys.executable, "-m", "pipeline", "diff", str(a), str(b), "--out",
               str(tmp / "tiny-out"), "--progress", "off"]  # fmt: skip
    subprocess.run(command, check=True, cwd=tmp, capture_output=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench diff",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--lines", type=int, default=10_000_000, help="lines per file")
    parser.add_argument("--churn", type=float, default=0.02, help="gen's --churn (0.02)")
    parser.add_argument("--replicas", type=int, default=2, help="matching replicas (2)")
    parser.add_argument("--runs", type=int, default=3, help="timed runs; the median counts")
    args = parser.parse_args(argv)
    old, new = sample_pair(args.lines, args.churn)
    print(
        f"input: {old.name} and {new.name} "
        f"({(old.stat().st_size + new.stat().st_size) / MB:,.0f} MB compressed)"
    )
    with tempfile.TemporaryDirectory(prefix="bench-diff-") as tmp:
        warm_up(Path(tmp))
        runs = []
        for k in range(args.runs):
            out = Path(tmp) / f"run{k}"
            out.mkdir()
            runs.append(pipeline_diff(old, new, out, args.replicas, False))
        seconds = statistics.median(r[0] for r in runs)
        report = runs[0][1]
        out = Path(tmp) / "memory"
        out.mkdir()
        _, _, memory = pipeline_diff(old, new, out, args.replicas, True)
    assert memory is not None
    counts = report["files"]["counts"]  # type: ignore[index]
    peaks = report["meta"]["peak_rss"]  # type: ignore[index]
    lines = counts["old_entries"] + counts["new_entries"]
    base_seconds, base_lines, base_counts = dict_diff(old, new)
    # this process did little else: its peak is the dict-based diff's
    base_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    same = all(counts[k] == v for k, v in base_counts.items())
    rate, base_rate = lines / seconds, base_lines / base_seconds
    ratio = rate / base_rate
    per_replica = max(peaks)
    fast, small = ratio >= 3.0, per_replica < 1.5e9
    print(f"lines: {lines:,} ({counts['old_entries']:,} + {counts['new_entries']:,})")
    print("changes: " + ", ".join(f"{k} {counts[k]:,}" for k in base_counts))
    print(
        f"pipeline diff     {seconds:7.2f} s  {rate / 1e6:5.2f} M lines/s  "
        f"(median of {args.runs}; {args.replicas} replicas; lists written)"
    )
    print(
        f"dict-based diff   {base_seconds:7.2f} s  {base_rate / 1e6:5.2f} M lines/s  "
        f"{base_peak / MB:,.0f} MB "
        f"(same changes found: {'yes' if same else 'NO: ' + str(base_counts)})"
    )
    print(
        f"speed-up over the dict-based diff: {ratio:.2f}x   [need >= 3x: "
        f"{'PASS' if fast else 'FAIL'}]"
    )
    print(
        "peak memory per matching replica (RSS): "
        + ", ".join(f"{p / MB:,.0f} MB" for p in peaks)
        + f"   [need < 1500 MB: {'PASS' if small else 'FAIL'}]"
    )
    print(f"peak memory, all processes together (PSS): {memory.peak / MB:,.0f} MB")
    for title, pss in sorted(memory.breakdown, key=lambda x: -x[1])[:6]:
        print(f"    {pss / MB:5.0f} MB  {title}")
    return 0 if fast and small and same else 1
