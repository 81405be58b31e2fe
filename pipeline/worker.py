"""A worker process: one replica (``kind: process``) or several as coroutines (``kind: async``).

The worker runs a uvloop event loop. Its inbox (data, acknowledgements and credit, for
replicas addressed by id) is read by a reader callback on the socket's descriptor, and by
the replicas themselves between batches. Service tasks beside the replicas: the control
channel from the supervisor (membership, end of stream, stop, start, exit), the periodic
stats report, and a watch on the supervisor process.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import os
import signal
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline import deadletter
from pipeline.codec import Buffer, Codec, unpack
from pipeline.failures import user_traceback
from pipeline.replica import Replica
from pipeline.topology import Topology
from pipeline.transport import WorkerSockets

log = logging.getLogger("pipeline.worker")


@dataclass(frozen=True)
class WorkerSpec:
    """Everything a worker process needs; it travels to the new process once, at start."""

    worker_id: str
    topology: Topology
    stage: str
    replicas: tuple[tuple[int, int], ...]  # (index, rid)
    inbox: str
    control: str
    stats: str
    run_dir: str
    title: str
    log_level: int = logging.INFO
    stats_interval: float = 0.5
    run_id: str = ""
    supervisor_pid: int = 0
    #: the frame's CURVE keys folder (tcp), else None
    curve: str | None = None


SUPERVISOR_GONE = 70


def _supervisor_gone() -> None:
    os.write(2, b"pipeline worker: the supervisor is gone; exiting\n")
    os._exit(SUPERVISOR_GONE)


async def watch_supervisor(pid: int) -> None:
    """Exit as soon as the supervisor does, even if it was killed (SIGKILL included), so no
    replica outlives its frame. A pidfd tells at once; elsewhere poll once a second."""
    loop = asyncio.get_running_loop()
    if not pid:
        await asyncio.Event().wait()
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        _supervisor_gone()
    except (AttributeError, OSError):
        while True:
            await asyncio.sleep(1.0)
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                _supervisor_gone()
    loop.add_reader(fd, _supervisor_gone)
    await asyncio.Event().wait()  # a service task: it lives as long as the worker


def prepare_process(title: str, log_level: int) -> None:
    # The supervisor coordinates shutdown. A terminal's Ctrl-C or hang-up, or a SIGTERM sent to
    # the whole process group, reaches the workers too: they ignore these and drain when the
    # supervisor says so (they still exit at once if it dies; SIGKILL stops one outright).
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    with contextlib.suppress(ImportError):
        from setproctitle import setproctitle  # noqa: PLC0415

        setproctitle(title)
    logging.basicConfig(
        level=log_level,
        format=f"%(asctime)s {title.removeprefix('pipeline: ')} %(levelname)s %(message)s",
        stream=sys.stderr,
    )


def worker_main(spec: WorkerSpec, slots: Any = None) -> None:
    """Entry point of a worker process; ``slots`` is shared memory where each replica notes
    the batch it is processing, so the supervisor knows it if the process is killed."""
    prepare_process(spec.title, spec.log_level)
    import uvloop  # noqa: PLC0415

    # Batches create and drop many small objects; the default thresholds would run the
    # cyclic collector every few hundred allocations, re-scanning everything in flight.
    gc.freeze()
    gc.set_threshold(100_000, 50, 50)

    code = uvloop.run(Worker(spec, slots).main())
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


class Worker:
    """The ``Host`` of the replicas in this process."""

    def __init__(self, spec: WorkerSpec, slots: Any = None) -> None:
        self.spec = spec
        self.slots = slots
        self.run_dir = Path(spec.run_dir)
        self.dead_letters = deadletter.folder(self.run_dir, spec.run_id)
        self.codec = Codec()
        self.replicas: dict[int, Replica] = {}
        self.tasks: dict[int, asyncio.Task[bool]] = {}
        self.failed: set[int] = set()
        #: the newest replica id started for each index
        self.latest: dict[int, int] = {}
        self._uses: dict[str, int] = {}
        self._exit = asyncio.Event()
        self.sockets: WorkerSockets

    # -- Host ---------------------------------------------------------------------------
    def send(self, endpoint: str, frames: list[Buffer]) -> None:
        self.sockets.send(endpoint, frames)

    def mark(self, index: int, src: int, seq: int) -> None:
        slots = self.slots
        if slots is not None and 2 * index + 1 < len(slots):
            slots[2 * index] = src
            slots[2 * index + 1] = seq

    def use(self, endpoint: str) -> None:
        self._uses[endpoint] = self._uses.get(endpoint, 0) + 1

    def release(self, endpoint: str) -> None:
        n = self._uses.get(endpoint, 0) - 1
        if n <= 0:
            self._uses.pop(endpoint, None)
            self.sockets.forget(endpoint)
        else:
            self._uses[endpoint] = n

    async def report(self, msg: dict[str, Any]) -> None:
        await self.sockets.control_send(msg)

    # -- life ---------------------------------------------------------------------------
    async def main(self) -> int:
        spec = self.spec
        self.sockets = WorkerSockets(spec.worker_id, spec.inbox, spec.control, spec.stats,
                                     spec.curve, spec.topology.max_message)  # fmt: skip
        self.sockets.watch_inbox(self._dispatch)
        services = [
            asyncio.create_task(self._control_loop(), name="control"),
            asyncio.create_task(self._stats_loop(), name="stats"),
            asyncio.create_task(watch_supervisor(spec.supervisor_pid), name="watch"),
        ]
        for service in services:
            service.add_done_callback(self._service_done)
        try:
            for index, rid in spec.replicas:
                await self.start_replica(index, rid)
            await self._exit.wait()
        finally:
            for service in services:
                service.cancel()
            for task in self.tasks.values():
                task.cancel()
            await asyncio.gather(*services, *self.tasks.values(), return_exceptions=True)
            self._send_stats()
            self.sockets.close()
        return 1 if self.failed else 0

    def _service_done(self, task: asyncio.Task[None]) -> None:
        """A service task must never end while the worker runs: if one does, it is a bug of
        the engine's; report it for every replica here and stop, rather than stall."""
        if task.cancelled() or self._exit.is_set():
            return
        exc = task.exception()
        log.error("worker service %s stopped", task.get_name(), exc_info=exc)
        error = f"internal error in the worker's {task.get_name()} task: {exc!r}"
        trace = "".join(traceback.format_exception(exc)) if exc else ""

        async def give_up() -> None:
            for rid in self.replicas:
                self.failed.add(rid)
                await self.report(
                    {
                        "t": "failed",
                        "rid": rid,
                        "phase": "engine",
                        "error": error,
                        "where": "the engine (please report this, with the traceback)",
                        "traceback": trace,
                        "batch": None,
                        "stats": None,
                    }
                )
            self._exit.set()

        self._giving_up = asyncio.ensure_future(give_up())

    async def start_replica(self, index: int, rid: int) -> None:
        topo = self.spec.topology
        self.latest[index] = rid
        try:
            replica = Replica(self, topo, topo.stage(self.spec.stage), index, rid)
        except Exception as exc:
            self.failed.add(rid)
            await self.report(
                {
                    "t": "failed",
                    "rid": rid,
                    "phase": "start",
                    "error": f"{type(exc).__name__}: {exc}",
                    "where": topo.stage(self.spec.stage).run,
                    "traceback": user_traceback(exc),
                    "batch": None,
                    "stats": None,
                }
            )
            self._check_exit()
            return
        self.replicas[rid] = replica
        await self.report(
            {"t": "hello", "rid": rid, "endpoint": self.sockets.endpoint, "pid": os.getpid()}
        )
        task = asyncio.create_task(replica.run(), name=replica.name)
        self.tasks[rid] = task
        task.add_done_callback(functools.partial(self._replica_done, rid))

    def _replica_done(self, rid: int, task: asyncio.Task[bool]) -> None:
        if task.cancelled():
            return
        if not task.result():  # it failed, and has reported so
            self.failed.add(rid)
        self._check_exit()

    def _check_exit(self) -> None:
        """A process worker ends with its replica. An async worker also waits while a failed
        replica of its may be restarted here (the supervisor sends start, or stops it)."""
        if not all(t.done() for t in self.tasks.values()):
            return
        if self.spec.topology.stage(self.spec.stage).kind == "process" or not any(
            rid in self.failed for rid in self.latest.values()
        ):
            self._exit.set()

    def poll(self) -> None:
        """Take in what has arrived, without waiting (called by replicas between batches)."""
        self.sockets.drain_inbox()

    def _dispatch(self, frames: list[Any]) -> None:
        head = unpack(frames[0].buffer)
        replica = self.replicas.get(head[2])
        if replica is None:
            return  # addressed to a replica that has ended here
        kind = head[0]
        if kind == "D":
            replica.on_data(head[1], head[3], head[4], head[5], frames[1:])
        elif kind == "A":
            replica.on_ack(head[1], head[3])
        elif kind == "C":
            replica.on_credit(head[1], head[3])
        elif kind == "F":
            replica.on_fence(head[1], head[3])
        elif kind == "S":
            replica.on_state(head[1], head[3], head[4], frames[1:])

    async def _control_loop(self) -> None:
        while True:
            msg = await self.sockets.control_receive()
            t = msg["t"]
            if t == "peers":
                for rid, section in msg["replicas"].items():
                    replica = self.replicas.get(rid)
                    if replica is not None:
                        replica.on_peers(section)
            elif t == "start":
                await self.start_replica(msg["index"], msg["rid"])
            elif t == "exit":
                self._exit.set()

    def _send_stats(self) -> None:
        for replica in self.replicas.values():
            self.sockets.send_stats(
                {
                    "t": "stats",
                    "rid": replica.rid,
                    "stage": replica.spec.name,
                    "index": replica.index,
                    "pid": os.getpid(),
                    "stats": replica.snapshot(),
                }
            )

    async def _stats_loop(self) -> None:
        while True:
            await asyncio.sleep(self.spec.stats_interval)
            self._send_stats()
