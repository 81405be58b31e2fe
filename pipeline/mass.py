"""MASS-style stages: ``fn(sockets, *args)`` called again and again.

``sockets.receive()`` returns the next input item (raising ``EndOfStream`` when the input has
ended, which ends the stage), ``sockets.send(obj, stage=None)`` emits an item to every stage
in ``next``, or to the one named. A stage with no input is a source; it ends its stream by
raising ``EndOfStream``. ``async def`` stages ``await`` both calls. A stage with input that
raises ``EndOfStream`` itself stops being called; the rest of its input is acknowledged
without being processed (and the number of records so discarded is logged), so the stages
before it can still finish.

Items are still batched on the wire: the engine hands the stage one received batch at a
time and sends what it emitted when it asks for the next, so acknowledgements, redelivery
and dead letters work per batch as for every other stage. A plain (synchronous) function runs
in a thread of its own, so its blocking ``receive()`` never stalls the event loop; it crosses
to the loop once per batch, not per item.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Awaitable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from pipeline.errors import EndOfStream, UsageError
from pipeline.failures import ReplicaFailure
from pipeline.flow import InBatch
from pipeline.source_loop import paused

if TYPE_CHECKING:
    from pipeline.replica import Replica

T = TypeVar("T")

log = logging.getLogger("pipeline.replica")


class _Core:
    """Batch bookkeeping shared by the async and the threaded sockets."""

    def __init__(self, replica: Replica) -> None:
        self._r = replica
        self._items: list[Any] = []
        self._pos = 0
        self._batch: InBatch | None = None
        #: receive() found the end of the input
        self._input_ended = False
        self._out: dict[str | None, list[Any]] = {}
        self._pending_out = 0
        self._last_handoff = time.monotonic()
        self.fed = bool(replica.upstream_stages)
        #: items received and sent so far by this replica
        self.received = 0
        self.sent = 0
        self.stage = replica.spec.name
        self.replica = replica.index
        self.ctx = replica.ctx

    def _add(self, obj: Any, stage: str | None) -> None:
        if stage is not None and stage not in self._r.edges:
            nexts = ", ".join(self._r.edges) or "none"
            msg = f"stage '{self.stage}' sent to '{stage}', which is not in its next ({nexts})"
            raise UsageError(msg)
        self._out.setdefault(stage, []).append(obj)
        self._pending_out += 1
        self.sent += 1

    def _emit_out(self, parent: InBatch | None) -> None:
        r = self._r
        for stage, items in self._out.items():
            r.emit(items, parent, None if stage is None else [stage])
        self._out = {}
        self._pending_out = 0

    def _end_batch(self) -> None:
        if self._batch is not None:
            b, self._batch = self._batch, None
            self._emit_out(b)
            self._r.end(b, None)
        self._items, self._pos = [], 0

    async def _next_batch(self) -> None:
        """Close the current batch and wait for the next one (EndOfStream at the end)."""
        r = self._r
        self._end_batch()
        await r.between_batches()
        b = await r.next_input()
        if b is None:
            self._input_ended = True
            raise EndOfStream
        self._items = r.begin(b)
        self._batch = b

    @contextlib.contextmanager
    def _busy(self) -> Iterator[None]:
        """Count the time in the stage function, less what it waited for input or credit."""
        c = self._r.c
        t0, waits = time.perf_counter(), c.wait_input + c.wait_credit
        try:
            yield
        finally:
            c.busy += time.perf_counter() - t0 - (c.wait_input + c.wait_credit - waits)

    def _due(self) -> bool:
        spec = self._r.spec.batch
        return self._pending_out >= spec.size or (
            self._pending_out > 0 and time.monotonic() - self._last_handoff >= spec.linger
        )

    async def _hold(self) -> None:
        """A source while the run is paused: what it made goes out, then it waits."""
        if self._pending_out:
            await self._handoff()
        await paused(self._r)

    async def _handoff(self) -> None:
        """A source's outputs so far go out (waiting for credit: backpressure)."""
        self._emit_out(None)
        self._last_handoff = time.monotonic()
        r = self._r
        r.flush_buffers(force=True)
        await r.send_all()
        await r.breathe()

    async def _failed(self, exc: Exception) -> None:
        """The stage function raised: its current batch is dead-lettered or fatal."""
        r = self._r
        self._out = {}
        self._pending_out = 0
        if self._batch is None:
            raise ReplicaFailure(exc, "source" if not self.fed else "process") from exc
        b, items = self._batch, self._items
        self._batch, self._items, self._pos = None, [], 0
        r.processing = None
        r.host.mark(r.index, 0, 0)
        await r.batch_failed(b, items, exc)

    async def _close(self, ended_early: bool) -> None:
        if not self.fed:
            self._emit_out(None)
            return
        if not ended_early:
            self._end_batch()
            return
        discarded = len(self._items) - self._pos
        while True:
            try:
                await self._next_batch()  # acknowledges the batch before
            except EndOfStream:
                break
            discarded += len(self._items)
            self._pos = len(self._items)
        if discarded:
            log.warning(
                "%s/%d ended its stream early: %d input records were not processed",
                self.stage,
                self.replica,
                discarded,
            )


class AsyncSockets(_Core):
    """``sockets`` of an ``async def`` MASS-style stage."""

    async def receive(self) -> Any:
        while self._pos >= len(self._items):
            await self._next_batch()
        item = self._items[self._pos]
        self._pos += 1
        self.received += 1
        return item

    async def send(self, obj: Any, stage: str | None = None) -> None:
        self._add(obj, stage)
        if not self.fed and self._due():
            await self._handoff()

    async def run(self) -> None:
        r = self._r
        fn, args, params = r.impl.obj, r.spec.args, r.spec.params
        ended_early = False
        while self.fed or not r.stopping:
            if not self.fed and not r.flowing.is_set():
                await self._hold()
                continue
            try:
                with self._busy():
                    await fn(self, *args, **params)
            except EndOfStream:
                ended_early = self.fed and not self._input_ended
                break
            except Exception as exc:
                await self._failed(exc)
            if not self.fed and self._due():
                await self._handoff()
        await self._close(ended_early)


class ThreadSockets(_Core):
    """``sockets`` of a plain MASS-style stage, which runs in a thread of its own."""

    def __init__(self, replica: Replica, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(replica)
        self._loop = loop

    def _on_loop(self, coro: Awaitable[T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()  # type: ignore[arg-type]

    def receive(self) -> Any:
        while self._pos >= len(self._items):
            self._on_loop(self._next_batch())
        item = self._items[self._pos]
        self._pos += 1
        self.received += 1
        return item

    def send(self, obj: Any, stage: str | None = None) -> None:
        self._add(obj, stage)
        if not self.fed and self._due():
            self._on_loop(self._handoff())

    def _thread(self) -> None:
        r = self._r
        fn, args, params = r.impl.obj, r.spec.args, r.spec.params
        ended_early = False
        while self.fed or not r.stopping:
            if not self.fed and not r.flowing.is_set():
                self._on_loop(self._hold())
                continue
            try:
                with self._busy():
                    fn(self, *args, **params)
            except EndOfStream:
                ended_early = self.fed and not self._input_ended
                break
            except Exception as exc:
                self._on_loop(self._failed(exc))
            if not self.fed and self._due():
                self._on_loop(self._handoff())
        self._on_loop(self._close(ended_early))

    async def run(self) -> None:
        # A daemon thread of its own (not the loop's executor): if the replica is cancelled
        # while the stage blocks, the worker can still exit.
        done = self._loop.create_future()

        def target() -> None:
            outcome: BaseException | None = None
            try:
                self._thread()
            except BaseException as exc:  # handed over to the loop
                outcome = exc
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
                self._loop.call_soon_threadsafe(_settle, done, outcome)

        threading.Thread(target=target, name=f"{self.stage}/{self.replica}", daemon=True).start()
        await done


def _settle(future: asyncio.Future[None], exc: BaseException | None) -> None:
    if future.done():
        return
    if exc is None:
        future.set_result(None)
    else:
        future.set_exception(exc)


async def run_mass(replica: Replica) -> None:
    if replica.impl.is_async:
        await AsyncSockets(replica).run()
    else:
        await ThreadSockets(replica, asyncio.get_running_loop()).run()
