"""``python -m bench scaleout``: the wrstat stages over tcp with CURVE, on one host and
across three simulated hosts, against unix sockets (ipc) on one host, in the same run.

The default topology on one generated stats file (``--lines``, as ``bench wrstat``), three
ways, taking turns, ``--runs`` times each (the median counts):

* ``transport: ipc``, every process on this host;
* ``transport: tcp`` with the frame's keys made by ``pipeline keys`` (every data, control
  and stats socket encrypted and authenticated), every process on this host;
* the same across three network namespaces joined by a bridge (needs root): the reader
  and the report on host ``a``, the usage replicas on ``b`` and ``c``
  (``pipeline worker --host``), so every chunk crosses a veth link, encrypted;
* the same with ``b`` and ``c`` joining as members of a group (``pipeline worker --group``,
  as batch nodes and pods do), the usage replicas placed on them when both have joined.

The reports of all four must be the same, byte for byte. (The namespaces share this
machine's two cores: what it shows is the cost of the network path and of CURVE, not the
gain of more machines.)
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.wrstat import REPO, pipeline_run, sample_file
from tests.hosts import Network

WAYS = ("ipc", "tcp", "hosts", "group")


def variant(folder: Path, way: str, network: Network) -> Path:
    """The default topology run ``way`` (keys of its own for tcp)."""
    text = (REPO / "topology.yaml").read_text()
    head = f"transport: {'ipc' if way == 'ipc' else 'tcp'}\nrun_dir: {folder / way}-run\n"
    if way != "ipc":
        keys = folder / f"keys-{way}"
        subprocess.run([sys.executable, "-m", "pipeline", "keys", str(keys)], check=True,
                       capture_output=True, cwd=REPO)  # fmt: skip
        head += f"keys: {keys}\n"
    if way == "hosts":
        hosts = ", ".join(f"{n}: {h.addr}" for n, h in network.hosts.items())
        head += f"hosts: {{{hosts}}}\nport: 7700\n"
    if way == "group":
        head += f"host: {network['a'].addr}\nport: 7700\ngroups: {{nodes: 2}}\n"
    if way in ("hosts", "group"):
        replicas = "    replicas: ${USAGE_REPLICAS:-2}\n"
        placed = "[b, c]" if way == "hosts" else "[nodes]"
        text = text.replace(replicas, f"{replicas}    hosts: {placed}\n")
    path = folder / f"wrstat-{way}.yaml"
    path.write_text(text.replace("name: wrstat\n", f"name: wrstat\n{head}", 1))
    return path


def across_hosts(network: Network, topology: Path, data: Path, reports: Path,
                 replicas: int, group: bool) -> float:  # fmt: skip
    """One run with the usage replicas on hosts b and c (as named hosts, or members of
    group nodes): seconds from start to exit."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "WRSTAT_DIR": str(data),
           "REPORT_DIR": str(reports), "USAGE_REPLICAS": str(replicas),
           "INGRESS_URL": "off"}  # fmt: skip

    def joining(h: str) -> list[str]:
        if not group:
            return ["--host", h]
        return ["--group", "nodes", "--name", h, "--address", network[h].addr,
                "--coordinator", f"{network['a'].addr}:7700"]  # fmt: skip

    agents = [network[h].start(sys.executable, "-m", "pipeline", "worker", str(topology),
                               *joining(h), env=env) for h in ("b", "c")]  # fmt: skip
    time.sleep(1.0)  # the agents are up and waiting for the coordinator
    t0 = time.perf_counter()
    done = subprocess.run(
        network["a"].command(sys.executable, "-m", "pipeline", "run", str(topology),
                             "--progress", "off"),
        cwd=reports.parent, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    seconds = time.perf_counter() - t0
    for agent in agents:
        agent.wait(60)
    if done.returncode != 0:
        raise SystemExit(f"the run across hosts failed ({done.returncode}):\n{done.stderr}")
    return seconds


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
    times: dict[str, list[float]] = {w: [] for w in WAYS}
    network = Network(("a", "b", "c"))
    try:
        with tempfile.TemporaryDirectory(prefix="bench-scaleout-") as tmp:
            work = Path(tmp)
            topologies = {w: variant(work, w, network) for w in WAYS}
            pipeline_run(path, work / "warm", args.replicas, False, topologies["ipc"])  # compiled
            for run in range(args.runs):
                for way in WAYS if run % 2 == 0 else tuple(reversed(WAYS)):
                    reports = work / f"{way}-{run}" / "reports"
                    reports.parent.mkdir()
                    if way in ("hosts", "group"):
                        seconds = across_hosts(network, topologies[way], path, reports,
                                               args.replicas, way == "group")  # fmt: skip
                    else:
                        seconds, _, _ = pipeline_run(path, reports, args.replicas, False,
                                                     topologies[way])  # fmt: skip
                    times[way].append(seconds)
            names = [p.name for p in (work / "ipc-0" / "reports").glob("*.tsv")]
            same = bool(names) and all(
                (work / f"{way}-0/reports/{n}").read_bytes()
                == (work / "ipc-0/reports" / n).read_bytes()
                for way in WAYS[1:]
                for n in names
            )
    finally:
        network.close()
    median = {w: statistics.median(times[w]) for w in WAYS}
    print(f"input: {path} ({lines:,} lines); {args.replicas} usage replicas; median of "
          f"{args.runs}")  # fmt: skip
    labels = {"ipc": "ipc, one host", "tcp": "tcp with CURVE, one host",
              "hosts": "tcp with CURVE, usage on 2 other hosts",
              "group": "the same, hosts joined as a group"}  # fmt: skip
    for way in WAYS:
        s = median[way]
        print(f"{labels[way]:<40} {s:6.2f} s  {lines / s / 1e6:5.2f} M lines/s")
    for way in WAYS[1:]:
        print(f"{labels[way]}: {median['ipc'] / median[way]:.0%} of the ipc throughput")
    print(f"reports the same all {len(WAYS)} ways: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
