"""``python -m bench scaleout``: the wrstat stages with every socket on tcp and CURVE,
against unix sockets (ipc), in the same run.

The default topology on one generated stats file (``--lines``, as ``bench wrstat``), run
with ``transport: ipc`` and with ``transport: tcp`` and the frame's keys made by
``pipeline keys`` (every data, control and stats socket encrypted and authenticated),
taking turns, ``--runs`` times each; the median counts. The reports of the two must be the
same, byte for byte.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.wrstat import REPO, pipeline_run, sample_file


def variant(folder: Path, transport: str) -> Path:
    """The default topology with ``transport`` (and, for tcp, keys of its own)."""
    text = (REPO / "topology.yaml").read_text()
    head = f"transport: {transport}\n"
    if transport == "tcp":
        keys = folder / "keys"
        subprocess.run([sys.executable, "-m", "pipeline", "keys", str(keys)], check=True,
                       capture_output=True, cwd=REPO)  # fmt: skip
        head += f"keys: {keys}\n"
    path = folder / f"wrstat-{transport}.yaml"
    path.write_text(text.replace("name: wrstat\n", f"name: wrstat\n{head}", 1))
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench scaleout",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--lines", type=int, default=10_000_000, help="lines in the file")
    parser.add_argument("--replicas", type=int, default=2, help="usage replicas (default 2)")
    parser.add_argument("--runs", type=int, default=3, help="timed runs of each; median counts")
    args = parser.parse_args(argv)
    path = sample_file(args.lines)
    lines = sum(1 for _ in subprocess.run(["zcat", str(path)], capture_output=True,
                                          check=True).stdout.splitlines())  # fmt: skip
    times: dict[str, list[float]] = {"ipc": [], "tcp": []}
    with tempfile.TemporaryDirectory(prefix="bench-scaleout-") as tmp:
        work = Path(tmp)
        topologies = {t: variant(work, t) for t in times}
        pipeline_run(path, work / "warm", args.replicas, False, topologies["ipc"])  # compiled once
        for run in range(args.runs):
            for t in ("ipc", "tcp") if run % 2 == 0 else ("tcp", "ipc"):
                reports = work / f"{t}-{run}" / "reports"
                reports.parent.mkdir()
                seconds, _, _ = pipeline_run(path, reports, args.replicas, False, topologies[t])
                times[t].append(seconds)
        same = all(
            (work / f"ipc-0/reports/{p.name}").read_bytes() == p.read_bytes()
            for p in (work / "tcp-0" / "reports").glob("*.tsv")
        )
    ipc, tcp = statistics.median(times["ipc"]), statistics.median(times["tcp"])
    print(f"input: {path} ({lines:,} lines); {args.replicas} usage replicas; median of "
          f"{args.runs}")  # fmt: skip
    print(f"ipc (unix sockets)        {ipc:6.2f} s  {lines / ipc / 1e6:5.2f} M lines/s")
    print(f"tcp with CURVE, one host  {tcp:6.2f} s  {lines / tcp / 1e6:5.2f} M lines/s")
    print(f"tcp+CURVE keeps {ipc / tcp:.0%} of the ipc throughput; reports the same: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
