"""``pipeline worker``: one host's agent, starting the workers the frame places there.

It loads the same topology as the coordinator, connects to the coordinator's control port
(``tcp://<coordinator's address>:<port>``, or ``--coordinator``; CURVE with the frame's
``keys``) as ``agent:<name>`` (a host of the topology's ``hosts``, or a member of one of
its ``groups`` under a name of its own), and until the coordinator says ``bye``: says it
is there once a second, starts the workers it is asked for (each binds its inbox on this
host's address and talks to the coordinator directly, as a local worker does), passes
signals on, and reports each worker that ends with its exit code. If the coordinator goes
silent for ``LOST_AFTER`` seconds after it was heard, or is not heard within
``join_timeout`` at the start, the agent stops its workers and exits 1: a worker never
outlives its frame. With ``stay``, it waits for the next frame instead (a standing pool).

SIGINT or SIGTERM stop it the same way, except that an agent holding replicas of a
``replicas: members`` stage first says it is leaving and waits until the coordinator has
drained and retired them (a second signal stops it at once).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import time
from pathlib import Path
from typing import Any

import zmq

from pipeline import launcher
from pipeline.codec import pack, unpack
from pipeline.errors import ExitCode, UsageError
from pipeline.hosts import AGENT_PREFIX, LOST_AFTER, PING_EVERY
from pipeline.launcher import WorkerProcess
from pipeline.security import Keys
from pipeline.supervisor import worker_preload
from pipeline.topology import Topology
from pipeline.transport import endpoint_for
from pipeline.worker import WorkerSpec

log = logging.getLogger("pipeline.agent")

#: seconds without an answer from the coordinator before the agent dials it again
REDIAL_AFTER = 5.0


def _say(sock: zmq.Socket[Any], msg: dict[str, Any]) -> None:
    """Send without waiting: before the coordinator is connected (or once it is gone) a
    DEALER would block; the agent keeps its own time and says it again."""
    with contextlib.suppress(zmq.Again):
        sock.send(pack(msg), zmq.NOBLOCK)


def coordinator_endpoint(topo: Topology, given: str | None = None) -> str:
    """Where the coordinator's control socket is: ``given`` (HOST or HOST:PORT) or the
    topology's coordinator address and port."""
    if not given:
        return f"tcp://{topo.address(topo.coordinator)}:{topo.port}"
    host, sep, port = given.removeprefix("tcp://").rpartition(":")
    if not sep or not port.isdigit():
        host, port = given.removeprefix("tcp://"), str(topo.port)
    if not host or not port or port == "0":
        msg = f"--coordinator must be HOST:PORT (or HOST, with the topology's port), got {given!r}"
        raise UsageError(msg)
    return f"tcp://{host}:{port}"


def own_address() -> str:
    """Where this host's workers are reached: the address its host name resolves to, or,
    where that is a loopback one (as when /etc/hosts maps the name to 127.0.1.1), the
    address its traffic leaves from (the default route's)."""
    name = socket.gethostname()
    try:
        address = socket.gethostbyname(name)
    except OSError:
        address = ""
    if address and not address.startswith("127."):
        return address
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:  # a datagram socket's connect sends nothing: it only picks the route
            probe.connect(("192.0.2.1", 9))
            address = probe.getsockname()[0]
        except OSError:
            address = ""
    if not address or address.startswith("127.") or address == "0.0.0.0":
        msg = (f"cannot find an address of this host ({name}) that other hosts reach; "
               "give --address")  # fmt: skip
        raise UsageError(msg)
    return address


class HostAgent:
    """The agent of ``host`` in the frame of ``topo`` (see the module docstring)."""

    def __init__(self, topo: Topology, host: str | None = None, join_timeout: float = 120.0, *,
                 group: str | None = None, address: str | None = None,
                 coordinator: str | None = None, stay: bool = False,
                 ready_file: str | None = None) -> None:  # fmt: skip
        if group is not None:
            if group not in topo.groups:
                known = ", ".join(topo.groups) or "none"
                msg = f"group {group!r} is not in the topology's groups ({known})"
                raise UsageError(msg)
            host = host or socket.gethostname()
        elif host is None or host not in topo.hosts:
            known = ", ".join(topo.hosts) or "none"
            msg = f"host {host!r} is not in the topology's hosts ({known}); or give --group"
            raise UsageError(msg)
        elif host == topo.coordinator:
            msg = f"{host} is the coordinator: run pipeline run there, not pipeline worker"
            raise UsageError(msg)
        if topo.keys is None or not (topo.port or coordinator):
            msg = ("a frame on several hosts needs 'keys' (the same pipeline keys folder on "
                   "every host) and the coordinator's 'port'")  # fmt: skip
            raise UsageError(msg)
        self.topo, self.host, self.group, self.join_timeout = topo, host, group, join_timeout
        self.stay = stay
        #: present while this host runs a worker of a frame (a readiness probe's file)
        self.ready_file = Path(ready_file) if ready_file else None
        self.address = address or (own_address() if group else topo.address(host))
        self.keys = Keys(topo.keys)
        self.endpoint = coordinator_endpoint(topo, coordinator)
        self.workers: dict[str, WorkerProcess] = {}
        self.stopping = False
        self.leaving = False

    def run(self) -> int:
        launcher.preload(worker_preload(self.topo))
        Path(self.topo.run_dir).mkdir(parents=True, exist_ok=True)
        for sig in (signal.SIGINT, signal.SIGTERM):
            # started with it ignored (a job script's choice: the scheduler signals every
            # process of a job, and the coordinator's drain is what ends this host's part)
            if signal.getsignal(sig) is not signal.SIG_IGN:
                signal.signal(sig, self._stop)
        while True:
            code = self._frame()
            if not self.stay or self.stopping or self.leaving or code == ExitCode.USAGE:
                return int(code)
            log.info("host %s: waiting for the next frame", self.host)

    def _frame(self) -> ExitCode:
        """Serve one frame, from joining it to its end (or the coordinator's loss)."""
        ctx = zmq.Context()
        sock = self._dial(ctx)
        what = f"as a member of group {self.group} " if self.group else ""
        log.info("host %s: joining the frame at %s %s(workers reached at %s)", self.host,
                 self.endpoint, what, self.address)  # fmt: skip
        started, heard, said = time.monotonic(), None, 0.0
        dialed = started
        code = ExitCode.OK
        try:
            while not self.stopping:
                now = time.monotonic()
                if heard is None and now - dialed > REDIAL_AFTER:
                    # no answer yet: dial again, afresh (the name is looked up again, and
                    # a connection left from the frame before is not waited on)
                    sock.close(linger=0)
                    sock, dialed = self._dial(ctx), now
                if now - said >= PING_EVERY:
                    _say(sock, {"t": "agent", "host": self.host, "pid": os.getpid(),
                                "alive": list(self.workers), "group": self.group,
                                "address": self.address, "leaving": self.leaving})  # fmt: skip
                    said = now
                if sock.poll(200):
                    msg = unpack(sock.recv())
                    heard = time.monotonic()
                    if msg.get("t") == "bye":
                        break
                    if msg.get("t") == "refused":
                        log.error("host %s: the coordinator refused this worker: %s",
                                  self.host, msg.get("why"))  # fmt: skip
                        code = ExitCode.USAGE
                        break
                    self._on(msg, sock)
                self._reap(sock)
                if self.leaving and not self.workers:
                    log.info("host %s: its replicas are retired; leaving the frame", self.host)
                    self.stopping = True
                waited = now - started
                if heard is None and self.join_timeout and waited > self.join_timeout:
                    log.error("host %s: the coordinator at %s did not answer within %.0fs "
                              "(is pipeline run started there, with the same keys?)",
                              self.host, self.endpoint, self.join_timeout)  # fmt: skip
                    code = ExitCode.FAILED
                    break
                if heard is not None and now - heard > 2 * LOST_AFTER:
                    log.error("host %s: no word from the coordinator at %s for %.0fs; "
                              "stopping this host's workers", self.host, self.endpoint,
                              2 * LOST_AFTER)  # fmt: skip
                    code = ExitCode.FAILED
                    break
        finally:
            launcher.stop_all(list(self.workers.values()), grace=5.0)
            self._reap(sock)
            self._ready(False)
            _say(sock, {"t": "left"})  # so that going is not taken for being lost
            sock.close()
            ctx.term()
        return code

    def _dial(self, ctx: zmq.Context[Any]) -> zmq.Socket[Any]:
        """A socket to the coordinator, as this host, with the frame's keys."""
        sock: zmq.Socket[Any] = ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.ROUTING_ID, (AGENT_PREFIX + self.host).encode())
        sock.setsockopt(zmq.LINGER, 1000)
        self.keys.secure_client(sock)
        sock.connect(self.endpoint)
        return sock

    def _stop(self, signum: int, frame: Any) -> None:
        """The first signal to an agent holding replicas of a ``replicas: members`` stage
        asks for them to be drained and retired; any other stops it now."""
        held = any(self.topo.stage(w.spec.stage).per_member for w in self.workers.values())
        if held and not self.leaving:
            self.leaving = True
        else:
            self.stopping = True

    def _on(self, msg: dict[str, Any], sock: zmq.Socket[Any]) -> None:
        t = msg.get("t")
        if t == "spawn":
            spec = WorkerSpec(
                worker_id=msg["wid"], topology=self.topo, stage=msg["stage"],
                replicas=tuple((int(i), int(r)) for i, r in msg["replicas"]),
                inbox=endpoint_for("tcp", self.address, Path("."), msg["wid"]),
                control=self.endpoint, stats=msg["stats"], curve=str(self.keys.folder),
                run_dir=str(self.topo.run_dir), title=f"{msg['title']} on {self.host}",
                log_level=int(msg["log_level"]), stats_interval=float(msg["stats_interval"]),
                run_id=msg["run_id"], supervisor_pid=os.getpid(),
            )  # fmt: skip
            w = launcher.start(spec, int(msg["indexes"]))
            self.workers[spec.worker_id] = w
            self._ready(True)
            label = ",".join(str(i) for i, _ in spec.replicas)
            log.info("host %s: started %s[%s] (pid %s)", self.host, spec.stage, label, w.pid)
            _say(sock, {"t": "started", "wid": spec.worker_id, "pid": w.pid})
        elif t == "signal":
            target = self.workers.get(str(msg.get("wid")))
            if target is not None:
                target.signal(int(msg["sig"]))

    def _ready(self, ready: bool) -> None:
        """Say (with the ready file) whether this host runs a replica: a StatefulSet that
        starts its pods in order starts the next only when this one holds its replica,
        so the members' order is the replicas' order."""
        if self.ready_file is None:
            return
        if ready:
            self.ready_file.touch()
        else:
            self.ready_file.unlink(missing_ok=True)

    def _reap(self, sock: zmq.Socket[Any]) -> None:
        """Tell the coordinator of each worker that ended."""
        for wid, w in list(self.workers.items()):
            if not w.alive():
                w.process.join(0)
                _say(sock, {"t": "exited", "wid": wid, "code": w.exitcode()})
                del self.workers[wid]
        if not self.workers:
            self._ready(False)
