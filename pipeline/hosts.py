"""The other hosts of a frame, as the supervisor sees them.

A stage placed on another host (``hosts: [b]``) runs in worker processes started there by
that host's agent, ``pipeline worker TOPOLOGY --host b``, which joins the supervisor's
control socket (tcp, CURVE) as ``agent:<host>``. A stage placed on a group (``hosts:
[pool]``, ``groups: [pool]``) runs on the group's members, agents started with ``pipeline
worker TOPOLOGY --group pool`` that join under their own name and say their address. The
agent says it is there once a second (``{"t": "agent", "host", "pid", "alive": [its
workers], "group", "address", "leaving"}``) and ``left`` when it goes; an agent the
topology has no place for is answered ``refused`` with the reason. The supervisor answers
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
from collections.abc import Callable, Collection
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
    #: the group it is a member of (None: a host named in the topology's hosts)
    group: str | None = None
    seen: float = field(default_factory=time.monotonic)
    lost: bool = False
    #: it was told to stop and waits for its replicas to be retired
    leaving: bool = False
    #: it said it left the frame (it is gone, but not lost)
    left: bool = False


class Hosts:
    """The agents that joined, and the workers they run (see the module docstring).

    ``hosts`` and ``groups`` are the topology's: an agent joins as one of the hosts, or as
    a member of one of the groups under a name of its own."""

    def __init__(self, send: Callable[[str, dict[str, Any]], bool],
                 hosts: Collection[str] = (), groups: Collection[str] = ()) -> None:  # fmt: skip
        self._send = send
        self._hosts, self._groups = set(hosts), set(groups)
        self.agents: dict[str, Agent] = {}
        self.workers: dict[str, RemoteWorker] = {}
        self._pinged = 0.0
        self._refused: set[tuple[str, str]] = set()

    def joined(self, host: str) -> bool:
        a = self.agents.get(host)
        return a is not None and not a.lost

    def members(self, group: str, leaving: bool = False) -> list[str]:
        """The members of ``group`` in the frame, in the order they joined: those that may
        take replicas, or (``leaving``) those waiting for theirs to be retired."""
        return [a.host for a in self.agents.values()
                if a.group == group and not a.lost and a.leaving == leaving]  # fmt: skip

    def _refusal(self, host: str, group: Any) -> str | None:
        """Why an agent cannot join (None: it can)."""
        if group is None:
            if host not in self._hosts:
                return (f"host {host!r} is not in the topology's hosts "
                        f"({', '.join(sorted(self._hosts)) or 'none'})")  # fmt: skip
            return None
        if group not in self._groups:
            return (f"group {group!r} is not in the topology's groups "
                    f"({', '.join(sorted(self._groups)) or 'none'})")  # fmt: skip
        if host in self._hosts or host in self._groups:
            return f"member name {host!r} is a host or group of the topology; give another --name"
        return None

    def on_message(self, sender: str, msg: dict[str, Any]) -> None:
        host = sender.removeprefix(AGENT_PREFIX)
        t = msg.get("t")
        if t == "agent":
            group = msg.get("group")
            why = self._refusal(host, group)
            if why is not None:
                if (host, why) not in self._refused:
                    self._refused.add((host, why))
                    log.error("refused the pipeline worker %s (pid %s): %s", host,
                              msg.get("pid"), why)  # fmt: skip
                self._send(sender, {"t": "refused", "why": why})
                return
            a = self.agents.get(host)
            if a is None or a.lost or a.pid != msg.get("pid"):
                what = f"a member of group {group}" if group else "its pipeline worker"
                log.info("host %s joined (%s, pid %s)", host, what, msg.get("pid"))
                a = self.agents[host] = Agent(host, int(msg.get("pid", 0)), group)
            else:
                a.seen = time.monotonic()
            if msg.get("leaving") and not a.leaving:
                a.leaving = True
                log.info("host %s is leaving: its replicas are drained first", host)
            # a worker the agent started and no longer runs has ended, even if the news
            # of its exit was lost on the way
            alive = set(msg.get("alive", ()))
            for w in self.workers.values():
                gone = w.pid is not None and w.spec.worker_id not in alive
                if w.host == host and gone and not w.ended:
                    w.end(None, f"ended on {host} (its exit code was not heard)")
            return
        if t == "left":
            a = self.agents.get(host)
            if a is not None and not a.lost:
                a.lost = a.left = True
                log.info("host %s left the frame", host)
                for w in self.workers.values():
                    if w.host == host and not w.ended:
                        w.end(None, f"ended with its host {host}, which left the frame")
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

    def describe(self) -> list[dict[str, Any]]:
        """The agents, for the frame's status."""
        return [{"name": a.host, "group": a.group,
                 "state": "left" if a.left else "lost" if a.lost else
                          "leaving" if a.leaving else "joined",
                 "workers": sum(1 for w in self.workers.values()
                                if w.host == a.host and not w.ended)}
                for a in self.agents.values()]  # fmt: skip

    def bye(self) -> None:
        """The run is over: every agent may stop."""
        for a in self.agents.values():
            if not a.lost:
                self._send(AGENT_PREFIX + a.host, {"t": "bye"})
