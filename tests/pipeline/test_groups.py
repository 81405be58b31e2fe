"""Groups of hosts that join at run time: the coordinator on host ``a``, members of group
``pool`` on ``b`` and ``c`` (network namespaces, tcp with the frame's CURVE keys), each
started with ``pipeline worker TOPOLOGY --group pool`` under a name of its own. Replicas go
to the least loaded member; a ``replicas: members`` stage grows as members join and
drains the replica of a member stopped with SIGTERM; a member stopped out of order loses
its replica loudly; ``--stay`` serves one frame after another."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from pipeline.errors import TopologyError
from pipeline.security import make_keys
from tests.brokers import free_port
from tests.conftest import REPO, make_topology
from tests.hosts import Network
from tests.stagelib import read_collected

pytestmark = pytest.mark.integration

PY = sys.executable


def grouped(network: Network, keys: Path, tmp_path: Path, body: str) -> Path:
    """A topology whose coordinator is host a, with group pool (unless ``body`` says)."""
    path = tmp_path / "pool.yaml"
    body = textwrap.dedent(body)
    path.write_text(textwrap.dedent(f"""\
        transport: tcp
        keys: {keys}
        host: {network["a"].addr}
        port: 7700
        run_dir: {tmp_path / "run"}
        """) + ("" if "groups:" in body else "groups: [pool]\n") + body)  # fmt: skip
    return path


def member(network: Network, topology: Path, tmp_path: Path, host: str, name: str,
           *args: str) -> subprocess.Popen[str]:  # fmt: skip
    return network[host].start(
        PY, "-m", "pipeline", "worker", str(topology), "--group", "pool", "--name", name,
        "--address", network[host].addr, "--coordinator", f"{network['a'].addr}:7700", *args,
        log=tmp_path / f"{name}.log",
    )  # fmt: skip


def wait_for(log: Path, text: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while text not in (log.read_text() if log.exists() else ""):
        if time.monotonic() > deadline:
            pytest.fail(f"{text!r} not in {log.name}:\n{log.read_text() if log.exists() else ''}")
        time.sleep(0.1)


def coordinator(network: Network, topology: Path, tmp_path: Path) -> subprocess.Popen[str]:
    return network["a"].start(PY, "-m", "pipeline", "run", str(topology), "--progress", "off",
                              log=tmp_path / "a.log")  # fmt: skip


def ended(proc: subprocess.Popen[str], timeout: float = 30) -> int:
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        pytest.fail(f"pid {proc.pid} did not end within {timeout}s")


STREAM = """\
    name: stream
    stages:
      - name: src
        run: tests.stagelib:ticking
        params: {every: 0.002}
        next: mid
      - name: mid
        run: tests.stagelib:tag_replica
        hosts: [pool]
        replicas: members
        next: sink
      - name: sink
        run: tests.stagelib:Collect
        params: {folder: "%s"}
    """


def test_a_group_stage_spreads_over_the_members_that_joined(
    network: Network, tmp_path: Path
) -> None:
    keys = make_keys(tmp_path / "keys").folder
    topology = grouped(network, keys, tmp_path, f"""\
        name: spread
        join_timeout: 20
        groups: {{pool: 2}}
        stages:
          - name: src
            run: tests.stagelib:count_to
            params: {{n: 5000}}
            next: mid
          - name: mid
            run: tests.stagelib:double
            replicas: 4
            hosts: [pool]
            next: sink
          - name: sink
            run: tests.stagelib:Collect
            params: {{folder: "{tmp_path / 'out'}"}}
        """)  # fmt: skip
    bee = member(network, topology, tmp_path, "b", "bee")
    cee = member(network, topology, tmp_path, "c", "cee")
    run = coordinator(network, topology, tmp_path)
    assert ended(run, 60) == 0, (tmp_path / "a.log").read_text()
    assert (ended(bee), ended(cee)) == (0, 0)  # the members end with the frame
    assert sorted(r["i"] for r in read_collected(tmp_path / "out")) == [2 * i for i in range(5000)]
    # the four replicas shared between the two members, least loaded first
    started = {n: (tmp_path / f"{n}.log").read_text().count("started mid[") for n in ("bee", "cee")}
    assert started == {"bee": 2, "cee": 2}, started
    assert "bee joined (a member of group pool" in (tmp_path / "a.log").read_text()


def grown(network: Network, tmp_path: Path) -> tuple[subprocess.Popen[str], ...]:
    """The stream with member bee, then cee joining: (bee, the run, cee) once the stage
    has grown to a replica on each (cee's ready file: cee.ready)."""
    keys = make_keys(tmp_path / "keys").folder
    topology = grouped(network, keys, tmp_path, STREAM % (tmp_path / "out"))
    bee = member(network, topology, tmp_path, "b", "bee")
    run = coordinator(network, topology, tmp_path)
    wait_for(tmp_path / "bee.log", "started mid[0]")
    cee = member(network, topology, tmp_path, "c", "cee", "--ready-file",
                 str(tmp_path / "cee.ready"))  # fmt: skip
    wait_for(tmp_path / "a.log", "stage 'mid' now runs 2 replicas")
    wait_for(tmp_path / "cee.log", "started mid[1]")
    return bee, run, cee


def test_a_members_stage_grows_with_a_joining_member_and_drains_a_leaving_one(
    network: Network, tmp_path: Path
) -> None:
    alog, ready = tmp_path / "a.log", tmp_path / "cee.ready"
    bee, run, cee = grown(network, tmp_path)
    assert ready.exists()  # it holds its replica
    deadline, where = time.monotonic() + 15, {}
    while len(where) < 2 and time.monotonic() < deadline:  # once both have reported
        asked = subprocess.run(
            network["a"].command(PY, "-m", "pipeline", "status", "--json", "--frame",
                                 str(tmp_path / "run")),
            cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True,
            text=True, timeout=30, check=True,
        )  # fmt: skip
        status = json.loads(asked.stdout)
        where = {r["index"]: r["host"] for r in status["stages"]["mid"]["replicas"]}
    assert where == {0: "bee", 1: "cee"}, where
    assert {r["host"] for r in status["stages"]["src"]["replicas"]} == {None}  # with a
    hosts = {h["name"]: (h["group"], h["state"], h["workers"]) for h in status["hosts"]}
    assert hosts == {"bee": ("pool", "joined", 1), "cee": ("pool", "joined", 1)}
    time.sleep(1.0)  # records flow through both
    cee.send_signal(signal.SIGTERM)  # as a StatefulSet scaled down stops its newest pod
    assert ended(cee) == 0, (tmp_path / "cee.log").read_text()
    assert not ready.exists()
    text = alog.read_text()
    assert "cee is leaving" in text and "replica 1 retired" in text, text
    wait_for(alog, "host cee left the frame")
    time.sleep(6)  # longer than a silent host takes to be lost: it is not, it left
    assert "cee is lost" not in alog.read_text()
    assert "stage 'mid' now runs 1 replicas" in text
    time.sleep(0.5)
    run.send_signal(signal.SIGTERM)  # an endless stream: drain it
    assert ended(run, 60) == 0, alog.read_text()
    assert ended(bee) == 0
    got = read_collected(tmp_path / "out")
    numbers = sorted(r["i"] for r in got)
    assert numbers == list(range(len(numbers))), "a record lost or repeated"
    assert {r["replica"] for r in got} == {0, 1}  # both members took records


def test_a_member_stopped_out_of_order_loses_its_replica_loudly(
    network: Network, tmp_path: Path
) -> None:
    alog = tmp_path / "a.log"
    bee, run, cee = grown(network, tmp_path)
    bee.send_signal(signal.SIGTERM)  # it holds replica 0, not the highest
    wait_for(alog, "bee is leaving while it holds replica 0 of stage 'mid', not its "
             "highest-numbered (1)")  # fmt: skip
    assert bee.poll() is None  # it waits to be drained, which cannot be done
    bee.send_signal(signal.SIGTERM)  # a second signal: it goes now, and its replica with it
    assert ended(bee) == 0
    assert ended(run, 60) == 1, alog.read_text()
    assert "stage 'mid' replica 0" in alog.read_text() and "died" in alog.read_text()
    ended(cee)


def test_a_member_that_stays_serves_one_frame_after_another(
    network: Network, tmp_path: Path
) -> None:
    keys = make_keys(tmp_path / "keys").folder
    topology = grouped(network, keys, tmp_path, """\
        name: again
        stages:
          - name: src
            run: tests.stagelib:count_to
            params: {n: 300}
            next: mid
          - name: mid
            run: tests.stagelib:double
            hosts: [pool]
            replicas: members
            next: sink
          - name: sink
            run: tests.stagelib:Collect
            params: {folder: "${OUT:-out}"}
        """)  # fmt: skip
    bee = member(network, topology, tmp_path, "b", "bee", "--stay", "--join-timeout", "0")
    try:
        for n in (1, 2):
            run = network["a"].start(PY, "-m", "pipeline", "run", str(topology), "--progress",
                                     "off", f"-eOUT={tmp_path / f'out{n}'}",
                                     log=tmp_path / f"a{n}.log")  # fmt: skip
            assert ended(run, 60) == 0, (tmp_path / f"a{n}.log").read_text()
            got = sorted(r["i"] for r in read_collected(tmp_path / f"out{n}"))
            assert got == [2 * i for i in range(300)]
            assert bee.poll() is None  # still there for the next frame
    finally:
        bee.send_signal(signal.SIGTERM)
        assert ended(bee) == 0
    # the same process joined both frames, waiting between them
    joined = f"host bee joined (a member of group pool, pid {bee.pid})"
    assert all(joined in (tmp_path / f"a{n}.log").read_text() for n in (1, 2))
    assert "waiting for the next frame" in (tmp_path / "bee.log").read_text()


def test_a_member_named_as_a_host_is_refused(network: Network, tmp_path: Path) -> None:
    keys = make_keys(tmp_path / "keys").folder
    topology = grouped(network, keys, tmp_path, f"""\
        name: refuse
        hosts: {{b: {network["b"].addr}}}
        coordinator: b
        stages:
          - name: src
            run: tests.stagelib:count_to
            next: mid
          - name: mid
            run: tests.stagelib:double
            hosts: [pool]
            next: sink
          - name: sink
            run: tests.stagelib:Collect
            params: {{folder: "{tmp_path / 'out'}"}}
        """).read_text().replace(f"host: {network['a'].addr}\n", "")  # fmt: skip
    (tmp_path / "refuse.yaml").write_text(topology)
    # the coordinator is host b here; a member calling itself "b" would take its name
    run = network["b"].start(PY, "-m", "pipeline", "run", str(tmp_path / "refuse.yaml"),
                             "--progress", "off", log=tmp_path / "b.log")  # fmt: skip
    try:
        clash = network["c"].start(
            PY, "-m", "pipeline", "worker", str(tmp_path / "refuse.yaml"), "--group", "pool",
            "--name", "b", "--address", network["c"].addr, log=tmp_path / "clash.log")  # fmt: skip
        assert ended(clash) == 2
        assert "member name 'b' is a host or group" in (tmp_path / "clash.log").read_text()
        assert "refused the pipeline worker b" in (tmp_path / "b.log").read_text()
    finally:
        run.send_signal(signal.SIGTERM)
        ended(run, 60)


@pytest.mark.parametrize(("extra", "stage_extra", "message"), [
    ("groups: [pool]\n", "    replicas: members\n",
     "replicas: members needs the stage on exactly one group"),
    ("groups: [pool]\nhosts: {pool: 10.0.0.1}\n", "", "'pool' is both a host and a group"),
    ("groups: [pool]\nport: 7700\n", "    hosts: [pond]\n",
     "host 'pond' is neither in the topology's hosts nor its groups (pool)"),
], ids=["members-off-group", "name-clash", "unknown-group"])  # fmt: skip
def test_group_placement_mistakes_are_topology_errors(
    tmp_path: Path, extra: str, stage_extra: str, message: str
) -> None:
    text = "transport: tcp\n" + extra + textwrap.dedent("""\
        stages:
          - name: src
            run: tests.stagelib:count_to
            next: mid
          - name: mid
            run: tests.stagelib:double
        """) + stage_extra  # fmt: skip
    with pytest.raises(TopologyError) as err:
        make_topology(text, tmp_path / "run")
    assert message in str(err.value)


def test_a_members_stage_needs_tcp_and_a_scalable_stage(tmp_path: Path) -> None:
    text = textwrap.dedent("""\
        groups: [pool]
        stages:
          - name: src
            run: tests.stagelib:count_to
            hosts: [pool]
            replicas: members
        """)  # fmt: skip
    with pytest.raises(TopologyError) as err:
        make_topology(text, tmp_path / "run")
    assert "groups of hosts need transport: tcp" in str(err.value)
    assert "replicas: members needs a stage that can scale while running" in str(err.value)


def test_worker_help_teaches_groups() -> None:
    done = subprocess.run([PY, "-m", "pipeline", "worker", "--help"], cwd=REPO,
                          capture_output=True, text=True, check=True)  # fmt: skip
    for flag in ("--group", "--name", "--address", "--coordinator", "--stay"):
        assert flag in done.stdout
    assert "replicas: members" in done.stdout


def test_a_lost_members_replica_restarts_on_another_member(
    network: Network, tmp_path: Path
) -> None:
    keys = make_keys(tmp_path / "keys").folder
    topology = grouped(network, keys, tmp_path, f"""\
        name: moved
        groups: {{pool: 2}}
        drain_timeout: 10
        stages:
          - name: src
            run: tests.stagelib:count_to
            params: {{n: 400}}
            batch: {{size: 1}}
            next: hold
          - name: hold
            run: tests.stagelib:hold
            params: {{seconds: 0.02}}
            replicas: 2
            hosts: [pool]
            on_error: restart
            next: sink
          - name: sink
            run: tests.stagelib:Collect
            params: {{folder: "{tmp_path / 'out'}"}}
        """)  # fmt: skip
    bee = member(network, topology, tmp_path, "b", "bee")
    cee = member(network, topology, tmp_path, "c", "cee")
    run = coordinator(network, topology, tmp_path)
    try:
        wait_for(tmp_path / "cee.log", "started hold[")
        held = (tmp_path / "cee.log").read_text().split("started hold[")[1][0]
        time.sleep(1.5)
        network.cut("c")  # cee is gone, with what its replica held
        code = ended(run, 90)
    finally:
        ended(bee)
        ended(cee)
    log = (tmp_path / "a.log").read_text()
    assert code == 0, log
    assert "host cee is lost" in log and f"replica {held}: restarting" in log
    assert f"started hold[{held}]" in (tmp_path / "bee.log").read_text()  # moved to bee
    # what cee held was delivered again: every record arrived (at least once), and the
    # summary says the counts could not be verified exactly
    got = [r["i"] for r in read_collected(tmp_path / "out")]
    assert set(got) == set(range(400))
    assert "not verified, a replica of hold was killed" in log


def test_a_group_without_its_members_fails_the_run_saying_what_to_start(tmp_path: Path) -> None:
    keys = make_keys(tmp_path / "keys").folder
    topology = tmp_path / "lonely.yaml"
    topology.write_text(textwrap.dedent(f"""\
        name: lonely
        transport: tcp
        keys: {keys}
        port: {free_port()}
        groups: {{pool: 2}}
        join_timeout: 2
        run_dir: {tmp_path / "run"}
        stages:
          - name: src
            run: tests.stagelib:count_to
            next: mid
          - name: mid
            run: tests.stagelib:double
            hosts: [pool]
        """))  # fmt: skip
    ran = subprocess.run([PY, "-m", "pipeline", "run", str(topology), "--progress", "off"],
                         cwd=REPO, capture_output=True, text=True, timeout=60,
                         check=False)  # fmt: skip
    assert ran.returncode == 1, ran.stderr
    assert "stage 'mid' waits for group pool to join" in ran.stderr
    assert (f"group pool has 0 of the 2 member(s) it waits for after 2s: start 'pipeline "
            f"worker {topology} --group pool' on its hosts") in ran.stderr  # fmt: skip
