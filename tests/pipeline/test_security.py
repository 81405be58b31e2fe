"""CURVE on every tcp socket: a frame runs with keys made by ``pipeline keys``; a peer
with another key, or none, is refused and logged; a message past ``max_message`` is not
taken."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import stat
import sys
import textwrap
import time
from pathlib import Path

import pytest
import zmq
import zmq.auth

from pipeline.errors import TopologyError, UsageError
from pipeline.security import key_files, make_keys
from pipeline.supervisor import Supervisor
from pipeline.transport import WorkerSockets
from tests.conftest import cli, make_topology, run_topology
from tests.hosts import Network
from tests.stagelib import read_collected


def test_keys_are_made_owner_only_and_never_overwritten(tmp_path: Path) -> None:
    ran = cli("keys", str(tmp_path / "keys"), "--client", "hostb")
    assert ran.returncode == 0, ran.stderr
    keys = tmp_path / "keys"
    names = sorted(p.name for p in keys.iterdir())
    assert names == ["authorized", "client.key", "client.key_secret", "hostb.key",
                     "hostb.key_secret", "server.key", "server.key_secret"]  # fmt: skip
    assert sorted(p.name for p in (keys / "authorized").iterdir()) == ["client.key", "hostb.key"]
    # key_files says what it made (the Kubernetes Secret is laid out from it)
    made = sorted(p.relative_to(keys).as_posix() for p in keys.rglob("*") if p.is_file())
    assert made == sorted(key_files(("hostb",)))
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in keys.glob("*.key*"))
    assert stat.S_IMODE(keys.stat().st_mode) == 0o700
    again = cli("keys", str(keys))
    assert again.returncode == 2 and "not empty" in again.stderr


def test_a_frame_runs_over_tcp_with_shared_keys(run_dir: Path, tmp_path: Path) -> None:
    keys = make_keys(tmp_path / "keys").folder
    out = tmp_path / "out"
    report = run_topology(
        f"""
        name: keyed
        transport: tcp
        keys: {keys}
        stages:
          - name: src
            run: tests.stagelib:count_to
            params: {{n: 2000}}
            next: mid
          - name: mid
            run: tests.stagelib:double
            replicas: 2
            next: sink
          - name: sink
            run: tests.stagelib:Collect
            params: {{folder: "{out}"}}
        """,
        run_dir,
    )
    assert report.ok, report.errors
    assert sorted(r["i"] for r in read_collected(out)) == [2 * i for i in range(2000)]
    assert not (run_dir / "curve").exists()  # the given keys, none made for the run


@pytest.fixture
def inbox(tmp_path: Path) -> tuple[WorkerSockets, zmq.Socket[bytes], zmq.Socket[bytes]]:
    """A worker's sockets serving CURVE with fresh frame keys, and a supervisor's control
    and stats ends for them to connect to (plain: this test looks at the inbox)."""
    keys = make_keys(tmp_path / "keys")
    ctx = zmq.Context.instance()
    control, stats = ctx.socket(zmq.ROUTER), ctx.socket(zmq.PULL)
    for s in (control, stats):
        keys.secure_server(s)
    control.bind("tcp://127.0.0.1:*")
    stats.bind("tcp://127.0.0.1:*")
    w = WorkerSockets("w1", "tcp://127.0.0.1:*", control.last_endpoint.decode(),
                      stats.last_endpoint.decode(), str(keys.folder), max_message=4096)  # fmt: skip
    return w, control, stats


def _received(w: WorkerSockets, wait: float = 1.0) -> list[list[bytes]]:
    got = []
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if w.inbox.poll(50):
            got.append(w.inbox.recv_multipart())
    return got


def test_only_authorized_keys_reach_a_workers_inbox(
    inbox: tuple[WorkerSockets, zmq.Socket[bytes], zmq.Socket[bytes]],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    w, control, stats = inbox
    ctx = zmq.Context.instance()
    server_public, _ = zmq.auth.load_certificate(tmp_path / "keys" / "server.key")
    try:
        caplog.set_level(logging.WARNING, "pipeline.security")
        rogue = ctx.socket(zmq.PUSH)  # a key of its own, not authorized
        rogue.curve_publickey, rogue.curve_secretkey = zmq.curve_keypair()
        rogue.curve_serverkey = server_public
        plain = ctx.socket(zmq.PUSH)  # no CURVE at all
        for s in (rogue, plain):
            s.setsockopt(zmq.LINGER, 0)
            s.connect(w.endpoint)
            s.send(b"let me in", zmq.NOBLOCK)
        assert _received(w) == []
        assert "refused a peer with the CURVE key" in caplog.text
        # the frame's own processes, with its client key, get through
        w.send(w.endpoint, [b"from a peer worker"])
        assert _received(w) == [[b"from a peer worker"]]
        # an authorized peer sending more than max_message is cut off, not buffered
        w.send(w.endpoint, [b"x" * 10_000])
        assert _received(w) == []
    finally:
        for s in (rogue, plain):
            s.close(linger=0)
        w.close()
        control.close(linger=0)
        stats.close(linger=0)


def test_keys_are_for_tcp_and_max_message_is_checked(run_dir: Path) -> None:
    graph = "stages:\n  - name: a\n    run: tests.stagelib:count_to\n"
    with pytest.raises(TopologyError, match="keys are for transport: tcp"):
        make_topology("keys: /somewhere\n" + graph, run_dir)
    with pytest.raises(TopologyError, match="max_message must be a whole number of bytes"):
        make_topology("max_message: 10\n" + graph, run_dir)


ASK = """
import json, sys
from pipeline.transport import ControlClient
record = json.load(open(sys.argv[1]))
client = ControlClient(record["api"], 3.0, sys.argv[2])
raw = json.dumps({"id": 1, "command": "status", "args": {}}).encode()
answer = client.request(raw, lambda reply: True)
client.close()
print(json.loads(answer)["result"]["state"] if answer else "no answer")
"""


def _client_folder(folder: Path, server: Path, mine: Path) -> Path:
    """What a tool on another host holds: the frame's public key and a key pair."""
    folder.mkdir()
    shutil.copy(server / "server.key", folder / "server.key")
    shutil.copy(mine, folder / "client.key_secret")
    return folder


def test_across_hosts_only_an_authorized_key_is_answered(
    network: Network, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    keys = make_keys(tmp_path / "keys", ("hostb",)).folder
    other = make_keys(tmp_path / "other", ("hostb",)).folder  # another frame's keys
    run = tmp_path / "run"
    topology = tmp_path / "xhost.yaml"
    topology.write_text(textwrap.dedent(f"""\
        name: xhost
        drain_timeout: 2
        transport: tcp
        host: {network['a'].addr}
        keys: {keys}
        run_dir: {run}
        stages:
          - name: src
            run: tests.stagelib:count_to
            params: {{n: 100000}}
            next: hold
          - name: hold
            run: tests.stagelib:hold
            params: {{seconds: 0.05}}
        """))  # fmt: skip
    log = tmp_path / "frame.log"
    frame = network["a"].start(sys.executable, "-m", "pipeline", "run", str(topology),
                               "--progress", "off", log=log)  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not (run / "frame.json").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert (run / "frame.json").exists(), log.read_text()
        record = str(run / "frame.json")
        mine = _client_folder(tmp_path / "b-keys", keys, keys / "hostb.key_secret")
        # the frame's public key, but a client key it never authorized
        theirs = _client_folder(tmp_path / "b-other", keys, other / "hostb.key_secret")
        b = network["b"]
        assert b.python(ASK, record, str(mine)).stdout.strip() == "running"
        assert b.python(ASK, record, str(theirs)).stdout.strip() == "no answer"
        network.cut("b")  # b is cut off: no answer, and no hang
        assert b.python(ASK, record, str(mine)).stdout.strip() == "no answer"
        network.mend("b")
        assert b.python(ASK, record, str(mine)).stdout.strip() == "running"
    finally:
        os.killpg(frame.pid, signal.SIGINT)
        frame.wait(60)
    assert "refused a peer with the CURVE key" in log.read_text()


def test_a_keys_folder_that_holds_no_keys_says_what_to_do(run_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    topology = make_topology(
        f"transport: tcp\nkeys: {tmp_path / 'empty'}\nstages:\n"
        "  - name: a\n    run: tests.stagelib:count_to\n",
        run_dir,
    )
    with pytest.raises(UsageError, match=r"not a folder of frame keys .* pipeline keys DIR"):
        Supervisor(topology).run()
    assert not (run_dir / "frame.json").exists()
