"""The supervisor: desired replicas per stage, one idempotent ``reconcile()``, end of stream.

It starts every replica, tells each one who its peers are (full membership, re-sent on every
change), watches every worker process, applies each stage's ``on_error`` policy when a
replica raises or dies, declares a stage ended once all its upstream stages have ended and
all its replicas have drained, and stops the run on a signal (drain with a deadline; a second
signal stops at once). It never runs stage code.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from pipeline import control, deadletter, launcher, membership, registry
from pipeline.contract import Role
from pipeline.errors import ExitCode
from pipeline.hosts import AGENT_PREFIX, Hosts, RemoteWorker
from pipeline.launcher import WorkerProcess
from pipeline.placement import Placement
from pipeline.progress import LiveView
from pipeline.report import RunReport
from pipeline.routing import KEY, default_owners
from pipeline.rundir import RunDir
from pipeline.scaling import Rescale
from pipeline.signals import StopSignals
from pipeline.stats import StageTotals, check_accounting, totals
from pipeline.status import StatusTracker
from pipeline.topology import StageSpec, Topology
from pipeline.transport import SupervisorSockets, endpoint_for
from pipeline.worker import WorkerSpec

log = logging.getLogger("pipeline")

START_TIMEOUT = 60.0
#: how often the status is published (and rates are taken)
STATUS_INTERVAL = 1.0
BACKOFF_MAX = 10.0
#: the same stop signal again within this many seconds is the same request, delivered twice
#: (a scheduler signals every process of a job, and its job script passes it on), not an
#: operator's second one
ECHO_WINDOW = 0.25


@dataclass
class ReplicaState:
    rid: int
    stage: str
    index: int
    worker: str
    state: str = "starting"  # starting, running, done, failed, dead
    endpoint: str | None = None
    pid: int | None = None
    started: float = field(default_factory=time.monotonic)
    stats: dict[str, Any] | None = None
    #: the stats are final (reported by the replica at its end)
    exact: bool = False

    @property
    def live(self) -> bool:
        return self.state == "running" and self.endpoint is not None


@dataclass
class StageState:
    spec: StageSpec
    desired: int
    slots: dict[int, int | None] = field(default_factory=dict)
    restart_at: dict[int, float] = field(default_factory=dict)
    incarnations: list[int] = field(default_factory=list)
    restarts: int = 0
    killed: int = 0
    ended: bool = False
    host: str | None = None
    #: partition -> replica index, for a keyed stage
    owners: list[int] | None = None
    #: raised at each rescale; senders fence each new epoch
    epoch: int = 0
    #: indexes of replicas being removed: they finish what they hold, then end
    retiring: set[int] = field(default_factory=set)
    #: ids of replicas that retired (senders await their last acknowledgements)
    retired: list[int] = field(default_factory=list)
    #: key partitions on the move: {"epoch", "old", "new"}
    migration: dict[str, Any] | None = None
    #: the replica counts it has run, from the start through every rescale
    scaled: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.scaled.append(self.desired)


class Supervisor:
    """Runs one topology to its end and returns a ``RunReport``."""

    def __init__(
        self, topology: Topology, *, log_level: int = logging.INFO, progress: bool = False
    ) -> None:
        self.topology = topology
        self.log_level = log_level
        #: a live view on the terminal while the run goes on
        self.view = LiveView(f"{topology.name}: running") if progress else None
        self.stages = {
            s.name: StageState(
                s,
                s.replicas,
                dict.fromkeys(range(s.replicas)),
                owners=default_owners(s.route.partitions, s.replicas)
                if s.route.kind == KEY
                else None,
            )
            for s in topology.stages
        }
        #: the rescale under way, if any (one at a time)
        self.rescale: Rescale | None = None
        #: sources hold back while paused
        self.paused = False
        self.replicas: dict[int, ReplicaState] = {}
        self.workers: dict[str, WorkerProcess | RemoteWorker] = {}
        self.worker_rids: dict[str, list[int]] = {}
        self.errors: list[str] = []
        self.suspects: dict[tuple[int, str], list[int]] = {}
        self._next_rid = 1
        self._next_wid = 1
        self._dirty = False
        self.failed = False
        self.draining = False
        self.stopped_by: str | None = None
        self._stopped_at = 0.0
        self._drain_deadline: float | None = None
        self.signals = StopSignals()
        self.rundir = RunDir(topology.run_dir)
        self.order = topology.order()
        self.tracker = StatusTracker()
        self._status: dict[str, Any] | None = None
        self._status_due = 0.0

    # ------------------------------------------------------------------ run
    def run(self) -> RunReport:
        topo = self.topology
        launcher.preload(worker_preload(topo))
        self.rundir.acquire(topo.name)
        t0 = time.monotonic()
        try:
            with self.signals:
                self.sockets = self._bind()
                self.hosts = Hosts(self.sockets.send, topo.hosts, topo.groups)
                self.placement = Placement(topo, self.hosts)
                if self.signals.fd is not None:  # a signal wakes the poll at once
                    self.sockets.watch_fd(self.signals.fd)
                try:
                    with self.view or contextlib.nullcontext():
                        while not self._finished():
                            self._step()
                finally:
                    self._shut_down()
        finally:
            registry.unregister(os.getpid())
            self.rundir.release()
        return self._report(time.monotonic() - t0)

    def _shut_down(self) -> None:
        """Every worker told to exit (and made to), their last counters taken in."""
        for wid, w in self.workers.items():
            if w.alive():
                self.sockets.send(wid, {"t": "exit"})
        local = [w for w in self.workers.values() if isinstance(w, WorkerProcess)]
        launcher.stop_all(local, grace=2.0)
        self._stop_remote(grace=3.0)
        self._reap_all()
        for _, msg in self.sockets.receive_stats():
            self._on_stats(msg)
        self.sockets.close()

    def _bind(self) -> SupervisorSockets:
        """Bind the supervisor's sockets and say where they are (frame.json, registry)."""
        topo = self.topology
        where = self.rundir.sockets
        tcp = topo.transport == "tcp"
        here = topo.address(None)
        control = endpoint_for(topo.transport, here, where, "control")
        if tcp and topo.port:  # where the other hosts' pipeline worker joins
            control = f"tcp://{here}:{topo.port}"
        sockets = SupervisorSockets(
            control,
            endpoint_for(topo.transport, here, where, "stats"),
            endpoint_for(topo.transport, here, where, "api"),
            endpoint_for(topo.transport, here, where, "status"),
            curve_dir=self.rundir.path if tcp else None,
            keys=topo.keys,
            max_message=topo.max_message,
        )
        record = self.rundir.announce(
            {
                "run_dir": str(self.rundir.path.resolve()),
                "started": time.time(),
                "api": sockets.api_endpoint,
                "status": sockets.pub_endpoint,
                "curve": str(sockets.curve.folder.resolve()) if sockets.curve else None,
                "stages": [s.name for s in topo.stages],
            }
        )
        registry.register(record)
        return sockets

    def _finished(self) -> bool:
        if self.failed:
            return True
        if not all(st.ended for st in self.stages.values()):
            return False
        return not any(w.alive() for w in self.workers.values())

    def _step(self) -> None:
        controls, stats, ready = self.sockets.poll(100)
        for worker, msg in controls:
            self._on_control(worker, msg)
        for host in self.hosts.check():
            log.error("host %s is lost: no word from its pipeline worker for some seconds; "
                      "its replicas are taken for dead", host)  # fmt: skip
        for _, msg in stats:
            self._on_stats(msg)
        if ready:
            self._check_workers()
        self._handle_signals()
        self._serve_requests()
        self.reconcile()
        self.placement.follow(self)
        if self.rescale is not None and self.rescale.step(self):
            self.rescale = None
        if self._dirty:
            self._dirty = False
            membership.broadcast(self)
        self._check_deadlines()
        if self.view and self.view.due():
            self.view.update(self.live_totals())
        if time.monotonic() >= self._status_due:
            self._publish_status()

    # ------------------------------------------------------------------ control
    def _serve_requests(self) -> None:
        requests, self.sockets.requests = self.sockets.requests, []
        for envelope, raw in requests:
            self.sockets.reply(envelope, control.handle(self, raw))

    def _publish_status(self) -> None:
        self._status = self.tracker.build(self)
        self._status_due = time.monotonic() + STATUS_INTERVAL
        self.sockets.publish(b"status", json.dumps(self._status).encode())

    def current_status(self) -> dict[str, Any]:
        """The latest status (built at most a second ago)."""
        if self._status is None:
            self._status = self.tracker.build(self)
        return self._status

    def set_paused(self, paused: bool) -> None:
        if paused != self.paused:
            self.paused = paused
            self.dirty()
            self._status_due = 0.0

    def dirty(self) -> None:
        """The membership changed: broadcast it at the end of this step."""
        self._dirty = True

    def slot_live(self, st: StageState, index: int) -> bool:
        rid = st.slots.get(index)
        return rid is not None and self.replicas[rid].live

    def live_totals(self) -> dict[str, StageTotals]:
        """Each stage's totals so far, from its replicas' latest counters."""
        out = {}
        for name, st in self.stages.items():
            found = (self.replicas[rid].stats for rid in st.incarnations if rid in self.replicas)
            t = totals(name, [s for s in found if s is not None])
            t.replicas = st.desired
            out[name] = t
        return out

    # ------------------------------------------------------------------ signals
    def _handle_signals(self) -> None:
        for name in self.signals.take():
            if not self.draining:
                self.stopped_by = name
                self._stopped_at = time.monotonic()
                self.stop(f"{name} received")
            elif name == self.stopped_by and time.monotonic() - self._stopped_at < ECHO_WINDOW:
                log.info("%s received again at once (the same request, delivered twice); "
                         "the drain goes on", name)  # fmt: skip
            else:
                self.fail(f"{name} received again: stopped at once")

    def stop(self, why: str) -> None:
        """Graceful stop: sources stop emitting, everything in flight drains."""
        if self.draining:
            return
        self.draining = True
        self._drain_deadline = time.monotonic() + self.topology.drain_timeout
        log.warning(
            "%s: draining (up to %.0fs; send the signal again to stop at once)",
            why,
            self.topology.drain_timeout,
        )
        self._dirty = True  # the membership carries "stop" to every replica

    def _check_deadlines(self) -> None:
        now = time.monotonic()
        if self._drain_deadline is not None and now > self._drain_deadline:
            left = [name for name, st in self.stages.items() if not st.ended]
            self.fail(
                f"the drain did not finish within {self.topology.drain_timeout:.0f}s "
                f"(not ended: {', '.join(left)}); stopped at once"
            )
        for r in self.replicas.values():
            if r.state == "starting" and now - r.started > START_TIMEOUT:
                self.fail(
                    f"stage '{r.stage}' replica {r.index} did not start within {START_TIMEOUT:.0f}s"
                )

    # ------------------------------------------------------------------ messages
    def _on_control(self, worker: str, msg: dict[str, Any]) -> None:
        if worker.startswith(AGENT_PREFIX):
            self.hosts.on_message(worker, msg)
            return
        r = self.replicas.get(msg.get("rid", -1))
        if r is None or r.state not in ("starting", "running"):
            return  # late news of a replica already given up for lost
        t = msg["t"]
        if t == "hello":
            if r.state == "starting":
                r.state = "running"
                r.endpoint = msg["endpoint"]
                r.pid = msg["pid"]
                self._dirty = True
        elif t == "done":
            r.state = "done"
            r.stats = msg["stats"]
            r.exact = True
            self._dirty = True
            st = self.stages[r.stage]
            if r.index in st.retiring and st.slots.get(r.index) == r.rid:
                st.retiring.discard(r.index)
                del st.slots[r.index]
                st.retired.append(r.rid)
                self.placement.release(r.stage, r.index)
                log.info("stage '%s' replica %d retired", r.stage, r.index)
                return
            early = [u for u in self.topology.upstream(r.stage) if not self.stages[u].ended]
            if early:
                self.fail(
                    f"stage '{r.stage}' replica {r.index} ended while {', '.join(early)} "
                    "still had records for it; this is a bug in the engine, please report it"
                )
        elif t == "migrated":
            if self.rescale is not None and self.rescale.stage == r.stage:
                self.rescale.on_migrated(r.rid, msg["epoch"], self.stages[r.stage])
        elif t == "failed":
            if msg.get("stats") is not None:
                r.stats = msg["stats"]
                r.exact = True
            self._replica_failed(r, msg)

    def _on_stats(self, msg: dict[str, Any]) -> None:
        r = self.replicas.get(msg["rid"])
        if r is not None and not r.exact:
            r.stats = msg["stats"]

    def _replica_failed(self, r: ReplicaState, msg: dict[str, Any]) -> None:
        batch = msg.get("batch")
        what = f"raised {msg['error']} in {msg['where']}"
        if batch:
            src = self.replicas.get(batch[0])
            origin = f"{src.stage}/{src.index}" if src else "?"
            what += f" on batch {batch[1]} from {origin} ({batch[2]} records)"
            if msg.get("phase") == "process":
                self.suspects.setdefault((batch[0], r.stage), []).append(batch[1])
        log.error(
            "stage '%s' replica %d %s\n%s",
            r.stage,
            r.index,
            what,
            msg.get("traceback", "").rstrip(),
        )
        self._lost(r, f"{what}", phase=msg.get("phase", "process"))

    def _check_workers(self) -> None:
        for wid, w in list(self.workers.items()):
            if w.alive():
                continue
            self.sockets.unwatch_fd(w.sentinel)
            if any(
                self.replicas[rid].state in ("starting", "running") for rid in self.worker_rids[wid]
            ):
                # Its last words may still be on the way: a process exits right after
                # sending them, and the exit can be seen first.
                for worker, msg in self.sockets.receive_control(timeout_ms=500):
                    self._on_control(worker, msg)
            code = w.exitcode()
            for rid in self.worker_rids.get(wid, []):
                r = self.replicas[rid]
                if r.state in ("starting", "running"):
                    how = w.cause or (
                        f"exit code {code}"
                        if code is not None and code >= 0
                        else (f"signal {signal.Signals(-code).name}" if code else "unknown cause")
                    )
                    self.stages[r.stage].killed += 1
                    held = w.in_flight(r.index)
                    if held is not None:  # the batch it was processing is suspect
                        self.suspects.setdefault((held[0], r.stage), []).append(held[1])
                    log.error(
                        "stage '%s' replica %d (pid %s) died: %s", r.stage, r.index, w.pid, how
                    )
                    self._lost(r, f"died ({how})", phase="killed")
            if self.stages[w.spec.stage].host == wid:
                self.stages[w.spec.stage].host = None

    def _lost(self, r: ReplicaState, what: str, phase: str) -> None:
        """A replica is gone before its end: restart it, or stop the run."""
        r.state = "failed" if phase != "killed" else "dead"
        st = self.stages[r.stage]
        retiring = r.index in st.retiring and st.slots.get(r.index) == r.rid
        if st.slots.get(r.index) == r.rid:
            st.slots[r.index] = None
        self._dirty = True
        if self.failed:
            return
        who = f"stage '{r.stage}' replica {r.index}"
        if st.migration is not None:
            self.fail(f"{who} {what} while key partitions moved; their state is lost")
            return
        if retiring:  # it was on its way out: what it held goes to its siblings
            st.retiring.discard(r.index)
            del st.slots[r.index]
            if st.spec.role in (Role.STATEFUL, Role.MASS):
                self.fail(f"{who} {what} while retiring; its partial state is lost")
            else:
                log.warning("%s %s while retiring; its input goes to the others", who, what)
            return
        spec = st.spec
        policy = spec.on_error
        stateless = spec.role not in (Role.STATEFUL, Role.SOURCE)
        restartable = stateless or self._restartable(spec)
        can_restart = phase not in ("start", "engine") and (
            policy == "restart" or (policy == "skip" and phase == "killed" and restartable)
        )
        if not can_restart:
            self.fail(f"{who} {what}; on_error: {policy} stops the run", quiet=True)
            log.error("stopping the run (on_error: %s)", policy)
            return
        st.restarts += 1
        if st.restarts > spec.max_restarts:
            self.fail(
                f"{who} {what}; it failed {st.restarts} times (max_restarts {spec.max_restarts})"
            )
            return
        delay = min(BACKOFF_MAX, 0.5 * 2 ** (st.restarts - 1))
        st.restart_at[r.index] = time.monotonic() + delay
        log.warning(
            "%s: restarting in %.1fs (restart %d of at most %d)",
            who,
            delay,
            st.restarts,
            spec.max_restarts,
        )

    @staticmethod
    def _restartable(spec: StageSpec) -> bool:
        from pipeline.contract import resolve  # noqa: PLC0415

        return bool(getattr(resolve(spec.run), "restartable", False))

    def fail(self, reason: str, quiet: bool = False) -> None:
        """Stop the run; ``reason`` goes in the report (and the log, unless said already)."""
        if reason not in self.errors:
            self.errors.append(reason)
            if not quiet:
                log.error("%s", reason)
        self.failed = True

    # ------------------------------------------------------------------ reconcile
    def reconcile(self) -> None:
        """Make the running replicas match the desired ones; declare stages ended."""
        if self.failed:
            return
        now = time.monotonic()
        for st in self.stages.values():
            if st.ended:
                continue
            missing = [
                i
                for i in range(st.desired)
                if st.slots.get(i) is None and now >= st.restart_at.get(i, 0.0)
            ]
            if missing:
                self._start(st, missing)
        for name in self.order:  # upstream stages first, so an end reaches down in one pass
            st = self.stages[name]
            if st.ended:
                continue
            ups = self.topology.upstream(name)
            if (
                not st.retiring
                and all(self.stages[u].ended for u in ups)
                and all(
                    rid is not None and self.replicas[rid].state == "done"
                    for rid in (st.slots.get(i) for i in range(st.desired))
                )
            ):
                st.ended = True
                self._dirty = True
                log.debug("stage '%s' ended", name)

    def _start(self, st: StageState, indexes: list[int]) -> None:
        spec = st.spec
        indexes, why = self.placement.place(st, indexes)
        if why is not None:
            self.fail(why)
            return
        pairs = []
        for index in indexes:
            rid = self._next_rid
            self._next_rid += 1
            st.slots[index] = rid
            st.incarnations.append(rid)
            pairs.append((index, rid))
        if spec.kind == "async" and st.host is not None and self.workers[st.host].alive():
            for index, rid in pairs:
                self.replicas[rid] = ReplicaState(rid, spec.name, index, st.host)
                self.worker_rids[st.host].append(rid)
                if not self.sockets.send(st.host, {"t": "start", "index": index, "rid": rid}):
                    log.warning("could not reach the async worker of '%s'; trying again", spec.name)
                    self.replicas[rid].state = "dead"
                    st.slots[index] = None
                    st.restart_at[index] = time.monotonic() + 0.5
            return
        groups = [pairs] if spec.kind == "async" else [[p] for p in pairs]
        for group in groups:
            wid = f"w{self._next_wid}"
            self._next_wid += 1
            label = ",".join(str(i) for i, _ in group)
            worker = WorkerSpec(
                worker_id=wid,
                topology=self.topology,
                stage=spec.name,
                replicas=tuple(group),
                inbox=endpoint_for(
                    self.topology.transport, self.topology.address(None), self.rundir.sockets, wid
                ),
                control=self.sockets.control_endpoint,
                stats=self.sockets.stats_endpoint,
                curve=str(self.sockets.curve.folder) if self.sockets.curve else None,
                run_dir=str(self.rundir.path),
                title=f"pipeline: {self.topology.name} {spec.name}[{label}]",
                log_level=self.log_level,
                stats_interval=self.topology.stats_interval,
                run_id=self.rundir.run_id,
                supervisor_pid=os.getpid(),
            )
            for index, rid in group:
                self.replicas[rid] = ReplicaState(rid, spec.name, index, wid)
            self.worker_rids[wid] = [rid for _, rid in group]
            indexes_max = max(st.desired, max(i for i, _ in group) + 1)
            host = self.placement.host(spec, group[0][0])
            proc: WorkerProcess | RemoteWorker
            if host is None:
                proc = launcher.start(worker, indexes_max)
            else:
                proc = self.hosts.spawn(host, worker, indexes_max, self.topology.file or "")
            self.workers[wid] = proc
            self.sockets.watch_fd(proc.sentinel)
            if spec.kind == "async":
                st.host = wid

    def _stop_remote(self, grace: float) -> None:
        """The workers on other hosts end as told (or are killed by their agents after
        ``grace``); then every agent is let go."""
        remote = [w for w in self.workers.values() if isinstance(w, RemoteWorker)]
        deadline = time.monotonic() + grace
        while any(w.alive() for w in remote) and time.monotonic() < deadline:
            for sender, msg in self.sockets.receive_control(timeout_ms=100):
                if sender.startswith(AGENT_PREFIX):
                    self.hosts.on_message(sender, msg)
            self.hosts.check()
        for w in remote:
            w.signal(signal.SIGKILL)
            w.close()
        self.hosts.bye()

    def _reap_all(self) -> None:
        for w in self.workers.values():
            if isinstance(w, WorkerProcess) and w.process.exitcode is None:
                w.process.join(0.1)

    # ------------------------------------------------------------------ the end
    def _report(self, seconds: float) -> RunReport:
        topo = self.topology
        stage_totals = {}
        exact: dict[str, bool] = {}
        for name, st in self.stages.items():
            reports = [self.replicas[rid].stats for rid in st.incarnations if rid in self.replicas]
            t = totals(name, [s for s in reports if s is not None])
            t.restarts = st.restarts
            t.scaled = list(st.scaled)
            t.killed = st.killed
            stage_totals[name] = t
            exact[name] = (
                all(
                    self.replicas[rid].exact
                    for rid in st.incarnations
                    if self.replicas[rid].stats is not None
                )
                and st.killed == 0
            )
        errors = list(self.errors)
        notes: list[str] = []
        if not self.failed:
            edges = [(s.name, t) for s in topo.stages for t in s.next]
            problems, notes = check_accounting(stage_totals, edges, exact)
            if problems:
                errors.append("accounting does not balance: " + "; ".join(problems))
        incomplete = [x for t in stage_totals.values() for x in t.incomplete]
        warnings = [f"{name}: {w}" for name, t in stage_totals.items() for w in t.warnings]
        if errors:
            code = ExitCode.FAILED
        elif incomplete:
            code = ExitCode.INCOMPLETE_INPUT
        else:
            code = ExitCode.OK
        letters = deadletter.files(deadletter.folder(self.rundir.path, self.rundir.run_id))
        report = RunReport(
            frame=topo.name,
            run_id=self.rundir.run_id,
            run_dir=self.rundir.path,
            exit_code=code,
            seconds=seconds,
            stages=stage_totals,
            errors=errors,
            incomplete=incomplete,
            dead_letters=letters,
            stopped_by=self.stopped_by,
            notes=notes,
            warnings=warnings,
        )
        report.write()
        return report


def worker_preload(topo: Topology) -> list[str]:
    """What the workers' forkserver loads once: every stage module (imported already when
    the topology was checked; a script's ``__main__`` aside) and the entries a stage module
    lists in ``WORKER_PRELOAD`` (``module`` or ``module:function``, e.g. to load compiled
    code that the supervisor itself never needs)."""
    entries: list[str] = []
    for name in dict.fromkeys(s.run.partition(":")[0] for s in topo.stages):
        if name == "__main__":
            continue
        entries.append(name)
        module = sys.modules.get(name)
        extra = getattr(module, "WORKER_PRELOAD", ())
        entries.extend(e for e in extra if isinstance(e, str) and e not in entries)
    return entries
