"""Starting and stopping worker processes.

Workers are started from multiprocessing's *forkserver*: a clean single-threaded server
process that imported the engine once, so a new replica starts in milliseconds, inherits no
ZeroMQ context or thread from the supervisor, and still runs stage code imported by name
(``module:callable``, including functions of a script's ``__main__``).
"""

from __future__ import annotations

import contextlib
import functools
import multiprocessing as mp
import multiprocessing.context
import os
import signal
import time
from dataclasses import dataclass, field
from typing import Any

from pipeline.worker import WorkerSpec, worker_main


@functools.cache
def context() -> multiprocessing.context.BaseContext:
    if "forkserver" in mp.get_all_start_methods():
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(["pipeline.forkserver_init"])
        return ctx
    return mp.get_context("spawn")  # pragma: no cover - not Linux


#: what the forkserver loads before it forks a worker (see ``preload``)
PRELOAD_ENV = "PIPELINE_WORKER_PRELOAD"


def preload(entries: list[str]) -> None:
    """Have the forkserver load ``entries`` once, before it forks any worker, so every
    worker starts with them loaded and their pages are shared: ``module`` is imported,
    ``module:function`` is imported and called (to load compiled code, say). Takes effect
    when the forkserver starts; an entry that fails is logged there and skipped."""
    os.environ[PRELOAD_ENV] = ",".join(entries)


@dataclass
class WorkerProcess:
    spec: WorkerSpec
    process: mp.process.BaseProcess
    #: shared with the worker: the batch (sender, seq) each replica index is processing
    slots: Any
    started: float = field(default_factory=time.monotonic)
    #: why it ended when its exit code cannot say (a worker on a lost host; see
    #: ``pipeline.hosts.RemoteWorker``); never, for a process of this host
    cause: str | None = None
    #: the host it runs on (``RemoteWorker``'s); None: this one
    host: str | None = None

    def in_flight(self, index: int) -> tuple[int, int] | None:
        """What replica ``index`` was processing when last seen (read after a death)."""
        if 2 * index + 1 >= len(self.slots):
            return None
        src, seq = self.slots[2 * index], self.slots[2 * index + 1]
        return (src, seq) if src else None

    @property
    def sentinel(self) -> int:
        return self.process.sentinel

    @property
    def pid(self) -> int | None:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.is_alive()

    def exitcode(self) -> int | None:
        return self.process.exitcode

    def signal(self, sig: int) -> None:
        pid = self.process.pid
        if pid is not None and self.process.exitcode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)


def start(spec: WorkerSpec, indexes: int) -> WorkerProcess:
    """Start a worker; ``indexes`` is how many replica indexes its stage may use."""
    ctx: Any = context()
    slots = ctx.Array("q", 2 * indexes, lock=False)
    proc = ctx.Process(target=worker_main, args=(spec, slots), name=spec.title, daemon=False)
    proc.start()
    return WorkerProcess(spec, proc, slots)


def stop_all(workers: list[WorkerProcess], grace: float) -> None:
    """Give the workers ``grace`` seconds to exit (they were told to), SIGKILL the rest,
    reap all. (Workers ignore SIGTERM: only their supervisor stops them.)"""
    deadline = time.monotonic() + grace
    for w in workers:
        w.process.join(max(0.0, deadline - time.monotonic()))
    for w in workers:
        if w.process.exitcode is None:
            w.signal(signal.SIGKILL)
            w.process.join(5)
