"""Stages on several hosts: the coordinator on host ``a``, ``pipeline worker`` on ``b`` and
``c`` (network namespaces on this machine, joined by a bridge), every socket tcp with the
frame's CURVE keys. The wrstat reports split across hosts are the reports of one host; a
host cut off mid-run is detected and the run fails saying so, never hangs; a worker with
another frame's keys is refused."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from pipeline.errors import TopologyError
from pipeline.security import make_keys
from tests.conftest import REPO, make_topology
from tests.hosts import Network
from tests.stagelib import read_collected
from tests.stages.wrstat.conftest import generate

pytestmark = pytest.mark.integration

PY = sys.executable


def placed(network: Network, keys: Path, run_dir: Path, body: str, **extra: str) -> str:
    hosts = ", ".join(f"{n}: {h.addr}" for n, h in network.hosts.items())
    head = textwrap.dedent(f"""\
        transport: tcp
        keys: {keys}
        hosts: {{{hosts}}}
        port: 7700
        run_dir: {run_dir}
        """)  # fmt: skip
    head += "".join(f"{k}: {v}\n" for k, v in extra.items())
    return head + textwrap.dedent(body)


def run_on_a(network: Network, topology: Path, *args: str,
             timeout: float = 120) -> subprocess.CompletedProcess[str]:  # fmt: skip
    return subprocess.run(
        network["a"].command(PY, "-m", "pipeline", "run", str(topology), "--progress", "off",
                             *args),
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True,
        timeout=timeout, check=False,
    )  # fmt: skip


def agents(network: Network, topology: Path, tmp_path: Path, *hosts: str,
           args: tuple[str, ...] = ()) -> dict[str, subprocess.Popen[str]]:  # fmt: skip
    return {h: network[h].start(PY, "-m", "pipeline", "worker", str(topology), "--host", h,
                                *args, log=tmp_path / f"{h}.log") for h in hosts}  # fmt: skip


def coordinator(network: Network, topology: Path, tmp_path: Path,
                *hosts: str) -> subprocess.Popen[str]:  # fmt: skip
    """``pipeline run`` started on host a (its log in a.log), once ``hosts`` have joined."""
    run = network["a"].start(PY, "-m", "pipeline", "run", str(topology), "--progress", "off",
                             log=tmp_path / "a.log")  # fmt: skip
    deadline = time.monotonic() + 30
    while not all(f"host {h} joined" in (tmp_path / "a.log").read_text() for h in hosts):
        if time.monotonic() > deadline:
            os.killpg(run.pid, 9)
            run.wait()
            pytest.fail((tmp_path / "a.log").read_text())
        time.sleep(0.2)
    return run


def ended(procs: dict[str, subprocess.Popen[str]], timeout: float = 30) -> dict[str, int]:
    codes = {}
    for h, p in procs.items():
        try:
            codes[h] = p.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, 9)
            codes[h] = p.wait()
    return codes


def test_replicas_of_one_stage_span_hosts(network: Network, tmp_path: Path) -> None:
    keys = make_keys(tmp_path / "keys").folder
    topology = tmp_path / "spread.yaml"
    topology.write_text(placed(network, keys, tmp_path / "run", f"""\
        name: spread
        stages:
          - name: src
            run: tests.stagelib:count_to
            params: {{n: 5000}}
            next: mid
          - name: mid
            run: tests.stagelib:double
            replicas: 2
            hosts: [b, c]
            next: sink
          - name: sink
            run: tests.stagelib:Collect
            params: {{folder: "{tmp_path / 'out'}"}}
        """))  # fmt: skip
    workers = agents(network, topology, tmp_path, "b", "c")
    ran = run_on_a(network, topology)
    codes = ended(workers)
    assert ran.returncode == 0, ran.stderr
    assert sorted(r["i"] for r in read_collected(tmp_path / "out")) == [2 * i for i in range(5000)]
    assert codes == {"b": 0, "c": 0}  # the agents ended with the frame
    assert "host b joined" in ran.stderr and "host c joined" in ran.stderr
    # one replica on each host
    assert "started mid[0]" in (tmp_path / "b.log").read_text()
    assert "started mid[1]" in (tmp_path / "c.log").read_text()


def test_the_wrstat_reports_across_three_hosts_are_those_of_one(
    network: Network, tmp_path: Path
) -> None:
    generate(tmp_path / "in", 3000, "scratch117=v3,scratch123=v6.2", date="20261101")
    keys = make_keys(tmp_path / "keys").folder
    base = (REPO / "topology.yaml").read_text()
    spread = base.replace("    replicas: ${USAGE_REPLICAS:-2}\n",
                          "    replicas: 2\n    hosts: [b, c]\n")  # fmt: skip
    assert spread != base
    env = [f"-eWRSTAT_DIR={tmp_path / 'in'}", "-eINGRESS_URL=off"]
    one = tmp_path / "one.yaml"
    one.write_text(base.replace("name: wrstat\n", f"name: wrstat\nrun_dir: {tmp_path / 'r1'}\n"))
    three = tmp_path / "three.yaml"
    three.write_text(placed(network, keys, tmp_path / "r3", spread.split("\n", 4)[4]))
    alone = run_on_a(network, one, *env, f"-eREPORT_DIR={tmp_path / 'one'}")
    assert alone.returncode == 0, alone.stderr
    workers = agents(network, three, tmp_path, "b", "c",
                     args=(*env, f"-eREPORT_DIR={tmp_path / 'three'}"))  # fmt: skip
    split = run_on_a(network, three, *env, f"-eREPORT_DIR={tmp_path / 'three'}")
    ended(workers)
    assert split.returncode == 0, split.stderr
    names = sorted(p.name for p in (tmp_path / "one").glob("*-20261101.tsv"))
    assert {"group-20261101.tsv", "user-20261101.tsv", "ages-20261101.tsv"} <= set(names)
    for name in names:
        same = (tmp_path / "three" / name).read_bytes() == (tmp_path / "one" / name).read_bytes()
        assert same, name


def test_a_host_cut_off_mid_run_is_reported_and_the_run_fails(
    network: Network, tmp_path: Path
) -> None:
    keys = make_keys(tmp_path / "keys").folder
    topology = tmp_path / "cut.yaml"
    topology.write_text(placed(network, keys, tmp_path / "run", """\
        name: cut
        drain_timeout: 5
        stages:
          - name: src
            run: tests.stagelib:count_to
            params: {n: 400}
            batch: {size: 1}
            next: hold
          - name: hold
            run: tests.stagelib:hold
            params: {seconds: 0.05}
            replicas: 2
            hosts: [b, c]
        """))  # fmt: skip
    workers = agents(network, topology, tmp_path, "b", "c")
    run = coordinator(network, topology, tmp_path, "b", "c")
    try:
        time.sleep(2)
        t0 = time.monotonic()
        network.cut("c")
        code = run.wait(60)
        seconds = time.monotonic() - t0
    finally:
        if run.poll() is None:
            os.killpg(run.pid, 9)
        codes = ended(workers, timeout=30)
    log = (tmp_path / "a.log").read_text()
    assert code == 1, log
    assert "host c is lost" in log and "lost with its host c" in log
    assert seconds < 30, f"{seconds:.1f} s to notice"
    assert codes["c"] == 1  # its agent, cut off, stopped its workers and said so
    assert "no word from the coordinator" in (tmp_path / "c.log").read_text()


def test_a_worker_with_another_frames_keys_is_refused(network: Network, tmp_path: Path) -> None:
    keys = make_keys(tmp_path / "keys", ("hostb",)).folder
    # host b holds the frame's server key and a client key of its own, which the frame does
    # not (or no longer) authorize
    other = tmp_path / "b-keys"
    (other / "authorized").mkdir(parents=True)
    for src, dst in (
        ("server.key", "server.key"),
        ("server.key_secret", "server.key_secret"),
        ("hostb.key", "client.key"),
        ("hostb.key_secret", "client.key_secret"),
    ):
        shutil.copy(keys / src, other / dst)
    (keys / "authorized" / "hostb.key").unlink()
    body = """\
        name: refused
        stages:
          - name: src
            run: tests.stagelib:count_to
            params: {n: 10}
            next: mid
          - name: mid
            run: tests.stagelib:double
            hosts: [b]
        """
    mine = tmp_path / "mine.yaml"
    mine.write_text(placed(network, keys, tmp_path / "run", body, join_timeout="4"))
    theirs = tmp_path / "theirs.yaml"  # the same frame, with host b's keys
    theirs.write_text(placed(network, other, tmp_path / "run-b", body))
    workers = agents(network, theirs, tmp_path, "b", args=("--join-timeout", "8"))
    ran = run_on_a(network, mine)
    codes = ended(workers, timeout=20)
    assert ran.returncode == 1
    assert "refused a peer with the CURVE key" in ran.stderr
    assert "host b did not join within 4s: start 'pipeline worker" in ran.stderr
    assert codes == {"b": 1}


def test_placement_is_checked(run_dir: Path, tmp_path: Path) -> None:
    graph = """\
stages:
  - name: a
    run: tests.stagelib:count_to
    next: b
  - name: b
    run: tests.stagelib:double
    hosts: [x]
"""
    with pytest.raises(TopologyError) as err:
        make_topology("transport: tcp\nhosts: {h1: 10.0.0.1}\n" + graph, run_dir)
    assert "host 'x' is neither in the topology's hosts nor its groups (h1)" in str(err.value)
    with pytest.raises(TopologyError, match="need the coordinator's 'port'"):
        make_topology("transport: tcp\nhosts: {h1: 10.0.0.1, x: 10.0.0.2}\n" + graph, run_dir)
    with pytest.raises(TopologyError, match="several hosts need transport: tcp"):
        make_topology("hosts: {h1: 10.0.0.1, x: 10.0.0.2}\nport: 7700\n" + graph, run_dir)
    topo = make_topology("transport: tcp\nhosts: {h1: 10.0.0.1, x: 10.0.0.2}\nport: 7700\n"
                         + graph, run_dir)  # fmt: skip
    assert topo.coordinator == "h1" and topo.host_of("b", 0) == "x"
    assert topo.host_of("a", 0) is None and topo.address(None) == "10.0.0.1"


def test_a_stage_scales_onto_another_host_while_it_runs(network: Network, tmp_path: Path) -> None:
    keys = make_keys(tmp_path / "keys").folder
    out = tmp_path / "out"
    topology = tmp_path / "grow.yaml"
    topology.write_text(placed(network, keys, tmp_path / "run", f"""\
        name: grow
        stages:
          - name: src
            run: tests.stagelib:count_to
            params: {{n: 300}}
            batch: {{size: 1}}
            next: hold
          - name: hold
            run: tests.stagelib:hold
            params: {{seconds: 0.02}}
            hosts: [b, c]
            next: sink
          - name: sink
            run: tests.stagelib:Collect
            params: {{folder: "{out}"}}
        """))  # fmt: skip
    workers = agents(network, topology, tmp_path, "b", "c")
    run = coordinator(network, topology, tmp_path, "b", "c")
    try:
        scaled = subprocess.run(
            network["a"].command(PY, "-m", "pipeline", "scale", "hold", "2", "--wait",
                                 "--frame", str(tmp_path / "run")),
            cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True,
            text=True, timeout=60, check=False,
        )  # fmt: skip
        code = run.wait(60)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, 9)
        ended(workers)
    log = (tmp_path / "a.log").read_text()
    assert scaled.returncode == 0, scaled.stdout + scaled.stderr
    assert code == 0, log
    assert "started hold[1]" in (tmp_path / "c.log").read_text()  # the new one, on host c
    assert sorted(r["i"] for r in read_collected(out)) == list(range(300))
