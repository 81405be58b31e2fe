"""The other hosts of a frame, as the supervisor sees them.

A stage placed on another host (``hosts: [b]``) runs in worker processes started there by
that host's agent, ``pipeline worker TOPOLOGY --host b``, which joins the supervisor's
control socket (tcp, CURVE) as ``agent:<host>``. The agent says it is there once a second
(``{"t": "agent", "host", "pid", "alive": [its workers]}``); the supervisor answers
``ping`` as often, asks it to ``spawn`` workers and to ``signal`` them, and hears when one
``exited``. A worker the agent started is a ``RemoteWorker`` here: the same questions as
a local ``WorkerProcess`` (alive, exit code, a descriptor that wakes the supervisor's poll
when it ends), answered from the agent's news. An agent silent for ``LOST_AFTER`` seconds
is a lost host: each of its workers is ended as "lost with its host", and the supervisor
applies the stages' ``on_error`` as for any replica that died.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pipeline.worker import WorkerSpec

log = logging.getLogger("pipeline")

#: seconds without a word from an agent before its host is taken for lost
LOST_AFTER = 5.0
#: how often the supervisor pings its agents (and they report)
PING_EVERY = 1.0
AGENT_PREFIX = "agent:"


@dataclass
class RemoteWorker:
    """A worker process on another host (see the module docstring)."""

    spec: WorkerSpec
    host: str
    send: Callable[[dict[str, Any]], bool]
    started: float = field(default_factory=time.monotonic)
    code: int | None = None
    ended: bool = False
    #: why it ended, when its exit code cannot say (its host was lost)
    cause: str | None = None
    pid: int | None = None

    def __post_init__(self) -> None:
        self._wake_r, self._wake_w = os.pipe()

    @property
    def sentinel(self) -> int:
        return self._wake_r

    def alive(self) -> bool:
        return not self.ended

    def exitcode(self) -> int | None:
        return self.code

    def in_flight(self, index: int) -> tuple[int, int] | None:
        return None  # not shared across hosts: its batch is not named, only its loss

    def signal(self, sig: int) -> None:
        if not self.ended:
            self.send({"t": "signal", "wid": self.spec.worker_id, "sig": int(sig)})

    def end(self, code: int | None, cause: str | None = None) -> None:
        """It ended (the agent said so, or its host was lost): wake the supervisor."""
        if self.ended:
            return
        self.ended, self.code, self.cause = True, code, cause
        os.write(self._wake_w, b"x")

    def close(self) -> None:
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)


@dataclass
class Agent:
    host: str
    pid: int
    seen: float = field(default_factory=time.monotonic)
    lost: bool = False


class Hosts:
    """The agents that joined, and the workers they run (see the module docstring)."""

    def __init__(self, send: Callable[[str, dict[str, Any]], bool]) -> None:
        self._send = send
        self.agents: dict[str, Agent] = {}
        self.workers: dict[str, RemoteWorker] = {}
        self._pinged = 0.0

    def joined(self, host: str) -> bool:
        a = self.agents.get(host)
        return a is not None and not a.lost

    def on_message(self, sender: str, msg: dict[str, Any]) -> None:
        host = sender.removeprefix(AGENT_PREFIX)
        t = msg.get("t")
        if t == "agent":
            a = self.agents.get(host)
            if a is None or a.lost or a.pid != msg.get("pid"):
                log.info("host %s joined (its pipeline worker, pid %s)", host, msg.get("pid"))
                self.agents[host] = Agent(host, int(msg.get("pid", 0)))
            else:
                a.seen = time.monotonic()
            # a worker the agent started and no longer runs has ended, even if the news
            # of its exit was lost on the way
            alive = set(msg.get("alive", ()))
            for w in self.workers.values():
                gone = w.pid is not None and w.spec.worker_id not in alive
                if w.host == host and gone and not w.ended:
                    w.end(None, f"ended on {host} (its exit code was not heard)")
            return
        one = self.workers.get(str(msg.get("wid")))
        if one is None:
            return
        if t == "exited":
            code = msg.get("code")
            one.end(int(code) if code is not None else None)
        elif t == "started":
            one.pid = msg.get("pid")

    def spawn(self, host: str, spec: WorkerSpec, indexes: int, topology_file: str) -> RemoteWorker:
        """Have ``host``'s agent start the worker of ``spec``."""
        to = AGENT_PREFIX + host
        w = RemoteWorker(spec, host, lambda m: self._send(to, m))
        self.workers[spec.worker_id] = w
        sent = self._send(to, {
            "t": "spawn", "wid": spec.worker_id, "stage": spec.stage,
            "replicas": [list(p) for p in spec.replicas], "indexes": indexes,
            "stats": spec.stats, "run_id": spec.run_id, "title": spec.title,
            "log_level": spec.log_level, "stats_interval": spec.stats_interval,
            "topology": topology_file,
        })  # fmt: skip
        if not sent:
            w.end(None, f"host {host}'s pipeline worker could not be reached")
        return w

    def check(self) -> list[str]:
        """Ping the agents; end the workers of any gone silent. The hosts just lost."""
        now = time.monotonic()
        if now - self._pinged >= PING_EVERY:
            self._pinged = now
            for a in self.agents.values():
                if not a.lost:
                    self._send(AGENT_PREFIX + a.host, {"t": "ping"})
        lost = []
        for a in self.agents.values():
            if not a.lost and now - a.seen > LOST_AFTER:
                a.lost = True
                lost.append(a.host)
                why = (f"lost with its host {a.host} (no word from its pipeline worker for "
                       f"{LOST_AFTER:.0f}s)")  # fmt: skip
                for w in self.workers.values():
                    if w.host == a.host:
                        w.end(None, why)
        return lost

    def bye(self) -> None:
        """The run is over: every agent may stop."""
        for a in self.agents.values():
            if not a.lost:
                self._send(AGENT_PREFIX + a.host, {"t": "bye"})
