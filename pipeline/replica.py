"""One replica of a stage: drives the user's code through the flow protocol.

A replica runs as a task on its worker's event loop (alone in its process for
``kind: process``, beside its siblings for ``kind: async``). Synchronous user code is called
inline. Between batches, and whenever it waits, the worker hands it what arrived on the
inbox (acknowledgements, credit, data). The replica never touches a socket: it asks its
``Host`` to send frames.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import time
from collections import deque
from collections.abc import Awaitable
from dataclasses import asdict
from pathlib import Path
from typing import Any, NamedTuple, Protocol, TypeVar

import numpy as np

from pipeline import deadletter
from pipeline.codec import Buffer, Codec
from pipeline.columns import Columns
from pipeline.contract import Context, Role, StageImpl, inspect_stage, resolve
from pipeline.errors import WireError
from pipeline.failures import ReplicaFailure, user_frame, user_traceback
from pipeline.flow import (
    ACK_DEAD,
    InBatch,
    OutBatch,
    OutEdge,
    Peer,
    ack_frames,
    credit_frames,
    data_frames,
    fence_frames,
)
from pipeline.handover import Handover
from pipeline.invoke import StageCode, UserCodeError
from pipeline.routing import KeyRouteError
from pipeline.stats import ReplicaCounters, latency_bucket, resident_bytes
from pipeline.topology import StageSpec, Topology

log = logging.getLogger("pipeline.replica")

T = TypeVar("T")

#: a busy replica lets the event loop run other tasks at least this often (seconds)
_YIELD_EVERY = 0.01


class Host(Protocol):
    """What a replica needs from the worker process that runs it."""

    codec: Codec
    run_dir: Path
    dead_letters: Path

    def send(self, endpoint: str, frames: list[Buffer]) -> None: ...
    def poll(self) -> None: ...
    def mark(self, index: int, src: int, seq: int) -> None: ...
    def use(self, endpoint: str) -> None: ...
    def release(self, endpoint: str) -> None: ...
    async def report(self, msg: dict[str, Any]) -> None: ...


class Upstream(NamedTuple):
    """A replica that sends to this one."""

    stage: str
    replica: int
    endpoint: str


_BUFFERED = frozenset((Columns, np.ndarray))


def measure(items: list[Any]) -> tuple[int, int]:
    """Records and buffer bytes of a list of items."""
    n = len(items)
    if _BUFFERED.isdisjoint(map(type, items)):  # the common case, scanned in C
        return n, 0
    nbytes = 0
    for o in items:
        t = type(o)
        if t is Columns:
            n += len(o) - 1
            nbytes += o.nbytes
        elif t is np.ndarray:
            nbytes += o.nbytes
    return n, nbytes


class Replica:
    """State and loop of one replica (``rid`` is unique in the run, never reused)."""

    def __init__(
        self, host: Host, topology: Topology, spec: StageSpec, index: int, rid: int
    ) -> None:
        self.host = host
        self.spec = spec
        self.index = index
        self.rid = rid
        self.name = f"{spec.name}/{index}"
        self.impl: StageImpl = inspect_stage(resolve(spec.run))
        self.ctx = Context(spec.name, index, spec.replicas, host.run_dir, spec.params)
        self.edges: dict[str, OutEdge] = {
            t: OutEdge(
                t,
                topology.stage(t).route,
                spec.flow.window,
                spec.batch.size,
                spec.batch.bytes,
                spread=index,
            )
            for t in spec.next
        }
        self.upstream_stages = frozenset(topology.upstream(spec.name))
        #: upstream stages that have inputs themselves (their lost batches are redelivered)
        self._replayable = frozenset(u for u in self.upstream_stages if topology.upstream(u))
        self.c = ReplicaCounters(
            edges={t: {} for t in spec.next}, inflight=dict.fromkeys(spec.next, 0)
        )
        self.up: dict[int, Upstream] = {}
        self._gone_up: dict[int, Upstream] = {}
        self._edge_of: dict[int, OutEdge] = {}
        self._early_credit: dict[int, int] = {}
        self.ended: set[str] = set()
        self.inq: deque[InBatch] = deque()
        self._acks: dict[int, list[tuple[int, int]]] = {}
        self._buf: dict[str, list[Any]] = {t: [] for t in spec.next}
        self._buf_bytes: dict[str, int] = dict.fromkeys(spec.next, 0)
        self._buf_records: dict[str, int] = dict.fromkeys(spec.next, 0)
        #: where each emitting batch's outputs start in the buffer: (offset, parent)
        self._buf_marks: dict[str, list[tuple[int, InBatch | None]]] = {t: [] for t in spec.next}
        self.wake = asyncio.Event()
        self.processing: InBatch | None = None
        self.stopping = False
        self.code = StageCode(self.impl, spec.params, self.ctx)
        self._leftover: list[Any] = []
        self._last_yield = time.monotonic()
        self._impl_file = inspect.getsourcefile(self.impl.obj) if self._has_source() else None
        self.finished = asyncio.Event()
        #: set by the first membership message: routes (owner tables) are known from then on
        self.placed = asyncio.Event()
        self.ctx.partitions = spec.route.partitions
        self.handover = Handover(self)
        #: set while sources may emit; cleared while the run is paused
        self.flowing = asyncio.Event()
        self.flowing.set()

    def _has_source(self) -> bool:
        try:
            inspect.getsourcefile(self.impl.obj)
        except TypeError:
            return False
        return True

    # ------------------------------------------------------------------ messages in
    def on_data(self, src: int, seq: int, attempt: int, records: int, frames: list[Any]) -> None:
        gone = self._gone_up.get(src)
        if gone is not None and gone.stage in self._replayable:
            return  # its sender is gone; its own sender delivers the inputs again
        self.inq.append(InBatch(src, seq, attempt, records, frames))
        if attempt:
            self.c.redelivered_in += 1
        self._note_held()
        self.wake.set()

    def on_fence(self, src: int, epoch: int) -> None:
        """A sender has applied a scaling epoch: a marker in the queue, in its place."""
        self.inq.append(InBatch(src, 0, 0, 0, [], refs=0, fence=epoch))
        self.wake.set()

    def on_state(self, src: int, epoch: int, partitions: list[int], frames: list[Any]) -> None:
        self.handover.on_state(src, epoch, partitions, frames)
        self.wake.set()

    def on_ack(self, src: int, acks: list[list[int]]) -> None:
        edge = self._edge_of.get(src)
        if edge is None:
            return
        for seq, status in acks:
            for parent in edge.on_ack(src, seq, status):
                self._complete(parent)
        self.wake.set()

    def on_credit(self, src: int, limit: int) -> None:
        edge = self._edge_of.get(src)
        if edge is None:
            # The receiver heard of us before we heard of it: keep the grant until we do.
            self._early_credit[src] = limit
            return
        edge.on_credit(src, limit)
        self.wake.set()

    def on_peers(self, msg: dict[str, Any]) -> None:
        """Apply the supervisor's membership: who sends to us, whom we send to."""
        self._apply_up({rid: Upstream(stage, index, ep) for rid, stage, index, ep in msg["up"]})
        me = msg.get("self", {})
        self.handover.on_section(me)
        self.ctx.replicas = int(me.get("replicas", self.ctx.replicas))
        if me.get("pause"):
            self.flowing.clear()
        else:
            self.flowing.set()
        for target, down in msg["down"].items():
            self._apply_down(self.edges[target], down)
        for stage in msg.get("ended", ()):
            self.ended.add(stage)
        if msg.get("stop") and not self.stopping:
            self.on_stop()
        self._note_held()
        self.placed.set()
        self.wake.set()

    def _apply_up(self, up: dict[int, Upstream]) -> None:
        for rid, sender in up.items():
            if rid not in self.up:
                self.host.use(sender.endpoint)
                self.host.send(sender.endpoint, credit_frames(self.rid, rid, self.spec.flow.credit))
        for rid, sender in self.up.items():
            if rid not in up:
                self._gone_up[rid] = sender
                self._acks.pop(rid, None)
                self.host.release(sender.endpoint)
                if sender.stage in self._replayable:
                    self.inq = deque(b for b in self.inq if b.src != rid)
        self.up = up

    def _apply_down(self, edge: OutEdge, down: dict[str, Any]) -> None:
        gone, condemned = edge.set_members(
            down["members"], down.get("owners"), down.get("suspects", ()), down.get("retired", ())
        )
        for peer in gone:
            self._edge_of.pop(peer.rid, None)
            self.host.release(peer.endpoint)
        for peer, batch in condemned:
            self._condemn(edge, peer, batch)
        for peer in edge.peers.values():
            if peer.rid not in self._edge_of:
                self._edge_of[peer.rid] = edge
                self.host.use(peer.endpoint)
                if peer.rid in self._early_credit:
                    edge.on_credit(peer.rid, self._early_credit.pop(peer.rid))
        epoch = int(down.get("epoch", 0))
        if epoch > edge.epoch:  # the target was scaled: re-split, then fence every channel
            edge.epoch = epoch
            edge.reroute(self.host.codec)
            for peer in edge.peers.values():
                self.host.send(peer.endpoint, fence_frames(self.rid, peer.rid, epoch))

    def describe(self) -> str:
        """The flow state of this replica, for debugging a stall."""
        parts = [
            f"{self.name} rid {self.rid}: queued {len(self.inq)}, ended {sorted(self.ended)}"
            f" of {sorted(self.upstream_stages)}, up {sorted(self.up)}"
        ]
        for t, e in self.edges.items():
            peers = ", ".join(
                f"{p.index}:{p.rid} credit {p.credit} unacked {len(p.unacked)}"
                for p in e.peers.values()
            )
            parts.append(
                f"  -> {t}: pending {e.pending}, inflight {e.inflight}/{e.window}, "
                f"buffered {len(self._buf[t])}; {peers}"
            )
        return "\n".join(parts)

    def _condemn(self, edge: OutEdge, peer: Peer, batch: OutBatch) -> None:
        """A batch whose receiver died while processing it, twice: to the dead letters."""
        items = self.host.codec.decode(batch.frames[0], batch.frames[1:])
        error = (
            f"replica {peer.index} of {edge.target} died while processing this batch, as one "
            "before it did: it is not delivered a third time"
        )
        entry = {
            "replica": peer.index,
            "from": f"{self.spec.name}/{self.index}",
            "batch": batch.seq,
            "attempt": batch.attempt,
            "records": batch.records,
            "error": error,
        }
        path = self.dead_letter(edge.target, entry, items)
        log.warning("%s: batch %d: %s; written to %s", self.name, batch.seq, error, path)
        for parent in edge.condemn(batch):
            self._complete(parent)

    def dead_letter(self, stage: str, entry: dict[str, Any], items: list[Any]) -> Path:
        return deadletter.write(
            self.host.dead_letters, stage, self.rid, {"stage": stage, **entry}, items
        )

    def on_stop(self) -> None:
        log.debug("stop requested; %s", self.describe())
        self.stopping = True
        self.ctx._stopping = True
        self.wake.set()

    def _upstream(self, rid: int) -> Upstream:
        return self.up.get(rid) or self._gone_up.get(rid) or Upstream("?", -1, "")

    def _sender(self, rid: int) -> str:
        """``stage/index`` of a sending replica, for messages."""
        sender = self._upstream(rid)
        return f"{sender.stage}/{sender.replica}"

    # ------------------------------------------------------------------ bookkeeping
    def _note_held(self) -> None:
        held = len(self.inq) + len(self.handover.held) + (self.processing is not None)
        self.c.held = held
        self.c.held_max = max(self.c.held_max, held)

    def _complete(self, b: InBatch) -> None:
        """Every output of ``b`` is delivered: acknowledge it to its sender."""
        stage = self._upstream(b.src).stage
        if b.status == ACK_DEAD:
            self.c.dead_by_stage[stage] = self.c.dead_by_stage.get(stage, 0) + b.records
        else:
            self.c.in_by_stage[stage] = self.c.in_by_stage.get(stage, 0) + b.records
            self.c.batches_in += 1
            self.c.records_in += b.records
        self._acks.setdefault(b.src, []).append((b.seq, b.status))

    def flush_acks(self, busy: bool = False) -> None:
        """Send pending acknowledgements. While ``busy``, a sender's are held back (fewer,
        larger messages) only as long as another batch of that sender waits in the queue,
        and only until a quarter of its credit has gathered: a sender whose window is full
        is never kept waiting by a queue full of another sender's batches."""
        if busy:
            least = max(1, self.spec.flow.credit // 4)
            queued = {b.src for b in self.inq}
            ready = [
                src for src, acks in self._acks.items() if len(acks) >= least or src not in queued
            ]
        else:
            ready = list(self._acks)
        for src in ready:
            acks = self._acks.pop(src)
            sender = self.up.get(src)
            if sender is not None:
                self.host.send(sender.endpoint, ack_frames(self.rid, src, acks))

    def emit(
        self, outputs: list[Any], parent: InBatch | None, edges: list[str] | None = None
    ) -> None:
        """Buffer outputs for the given edges (all by default); ``parent`` stays unacknowledged
        until every batch they end up in is acknowledged."""
        if not outputs:
            return
        n, nbytes = measure(outputs)
        self.c.records_out += n
        for t in self.edges if edges is None else edges:
            buf = self._buf[t]
            self._buf_marks[t].append((len(buf), parent))
            buf.extend(outputs)
            self._buf_bytes[t] += nbytes
            self._buf_records[t] += n
            if parent is not None:
                parent.refs += 1

    def flush_buffers(self, force: bool) -> None:
        """Turn buffered outputs into batches: all of them if ``force``, else those edges
        whose buffer is full. Outputs that cannot be routed or encoded are charged to the
        batch that produced them, under its stage's ``on_error``."""
        size, max_bytes = self.spec.batch.size, self.spec.batch.bytes
        fatal: ReplicaFailure | None = None
        for t, edge in self.edges.items():
            buf = self._buf[t]
            if not buf or not (force or len(buf) >= size or self._buf_bytes[t] >= max_bytes):
                continue
            marks = self._buf_marks[t]
            plain = self._buf_bytes[t] == 0 and self._buf_records[t] == len(buf)
            self._buf[t], self._buf_marks[t] = [], []
            self._buf_bytes[t] = self._buf_records[t] = 0
            parents = [p for _, p in marks if p is not None]
            try:
                edge.add(buf, parents, self.host.codec, plain)
            except (WireError, KeyRouteError):
                parents, failure = self._add_by_parent(edge, buf, marks)
                fatal = fatal or failure
            for p in parents:
                p.refs -= 1
                if p.refs == 0:
                    self._complete(p)
        if fatal is not None:
            raise fatal

    def _add_by_parent(
        self, edge: OutEdge, buf: list[Any], marks: list[tuple[int, InBatch | None]]
    ) -> tuple[list[InBatch], ReplicaFailure | None]:
        """Queue each batch's outputs on its own, to find the ones that cannot be sent.
        Returns the parents to release and the failure that stops this replica, if any (its
        batch stays unacknowledged, to be delivered again)."""
        release: list[InBatch] = []
        fatal: ReplicaFailure | None = None
        ends = [start for start, _ in marks[1:]] + [len(buf)]
        for (start, parent), end in zip(marks, ends, strict=True):
            part = buf[start:end]
            try:
                edge.add(part, [parent] if parent else [], self.host.codec)
            except (WireError, KeyRouteError) as exc:
                failure = self._outputs_failed(edge.target, parent, part, exc)
                if failure is not None:
                    fatal = fatal or failure
                    continue
            if parent is not None:
                release.append(parent)
        return release, fatal

    def _outputs_failed(
        self, target: str, parent: InBatch | None, outputs: list[Any], exc: Exception
    ) -> ReplicaFailure | None:
        """Outputs for ``target`` cannot be sent: dead-letter what made them, or fail."""
        self.c.errors += 1
        policy = self.spec.on_error
        phase = (
            "process"
            if parent is not None
            else ("source" if self.impl.role is Role.SOURCE else "finish")
        )
        skip = policy == "skip" or (
            policy == "restart" and parent is not None and parent.attempt >= 1
        )
        if not skip or (parent is None and phase == "finish"):
            return ReplicaFailure(exc, phase, parent)
        error = f"its output for {target} cannot be sent: {type(exc).__name__}: {exc}"
        if parent is None:  # a source's own items: keep them as they were
            entry = {"replica": self.index, "records": len(outputs), "error": error}
            path = self.dead_letter(self.spec.name, entry, outputs)
            self.c.records_dead += len(outputs)
        else:
            parent.status = ACK_DEAD
            entry = {
                "replica": self.index,
                "from": self._sender(parent.src),
                "batch": parent.seq,
                "attempt": parent.attempt,
                "records": parent.records,
                "error": error,
            }
            path = self.dead_letter(self.spec.name, entry, self.decode(parent))
            self.c.records_dead += parent.records
        log.warning("%s: %s; written to %s", self.name, error, path)
        return None

    def pump(self) -> None:
        """Send every batch that has credit and window now."""
        for edge in self.edges.values():
            for peer, batch in edge.sendable():
                self.host.send(peer.endpoint, data_frames(self.rid, peer.rid, batch))

    def pending(self) -> bool:
        return any(e.pending for e in self.edges.values())

    def idle(self) -> bool:
        return all(e.idle for e in self.edges.values()) and not any(self._buf.values())

    async def breathe(self) -> None:
        """Between batches: take in what arrived (acknowledgements, credit, data) at once,
        and now and then let the event loop run other tasks (control, stats, siblings)."""
        self.host.poll()
        now = time.monotonic()
        if now - self._last_yield >= _YIELD_EVERY:
            self._last_yield = now
            await asyncio.sleep(0)

    async def wait(self) -> None:
        await self.wake.wait()
        self.wake.clear()

    async def send_all(self) -> None:
        """Hand every made batch to a replica, waiting for credit if needed (backpressure)."""
        self.pump()
        self.flush_acks()
        while self.pending():
            t0 = time.perf_counter()
            await self.wait()
            self.c.wait_credit += time.perf_counter() - t0
            self.pump()
            self.flush_acks()

    async def drain(self) -> None:
        """Until every output batch is acknowledged."""
        self.flush_buffers(force=True)
        await self.send_all()
        while not self.idle():
            t0 = time.perf_counter()
            await self.wait()
            self.c.wait_credit += time.perf_counter() - t0
            self.pump()
            self.flush_acks()
        self.flush_acks()

    # ------------------------------------------------------------------ loops
    async def run(self) -> bool:
        """Run to the end of the stream (or failure) and report to the supervisor; True if
        the replica ended well."""
        try:
            await self.user_step(self.code.setup())
            await self.placed.wait()
            if self.impl.role is Role.SOURCE:
                from pipeline.source_loop import run_source  # noqa: PLC0415

                await run_source(self)
            elif self.impl.role is Role.MASS:
                from pipeline.mass import run_mass  # noqa: PLC0415 - only MASS stages need it

                await run_mass(self)
            else:
                await self._run_fed()
            t0 = time.perf_counter()
            outputs = await self.user_step(self.code.finish())
            self.c.busy += time.perf_counter() - t0
            self.emit(outputs, None)
            await self.drain()
        except ReplicaFailure as failure:
            await self._report_failure(failure)
            return False
        except Exception as exc:  # a bug of the engine's own: say so, with the traceback
            log.exception("%s: internal error", self.name)
            await self.host.report(
                {
                    "t": "failed",
                    "rid": self.rid,
                    "phase": "engine",
                    "error": f"internal error {type(exc).__name__}: {exc}",
                    "where": "the engine (please report this, with the traceback)",
                    "traceback": user_traceback(exc),
                    "batch": None,
                    "stats": self.snapshot(),
                }
            )
            return False
        finally:
            self.finished.set()
        await self.host.report({"t": "done", "rid": self.rid, "stats": self.snapshot()})
        return True

    @staticmethod
    async def user_step(step: Awaitable[T]) -> T:
        """Run a setup, finish or handover step; its failure stops this replica."""
        try:
            return await step
        except UserCodeError as err:
            raise ReplicaFailure(err.exc, err.phase) from err.exc

    async def _run_fed(self) -> None:
        while (b := await self.next_input()) is not None:
            await self._process(b)
            await self.between_batches()

    async def next_input(self) -> InBatch | None:
        """The next batch to process, once its outputs can be sent (backpressure); waits
        for one, and returns None when the input is complete: every upstream stage has
        ended, or this replica retires and has all it will get (``handover``)."""
        h = self.handover
        while True:
            while self.inq:
                b = self.inq.popleft()
                if b.fence:
                    h.on_fence(b.src, b.fence)
                elif h.holds(b):
                    h.held.append(b)
                else:
                    if self.pending():
                        await self.send_all()
                    return b
            if h.busy and await h.advance():
                continue
            if (
                not h.busy
                and not h.held
                and (self.ended >= self.upstream_stages or h.input_complete())
            ):
                return None
            self.flush_buffers(force=True)
            self.pump()
            self.flush_acks()
            t0 = time.perf_counter()
            await self.wait()
            self.c.wait_input += time.perf_counter() - t0

    async def between_batches(self) -> None:
        """After a batch: send what is due, and take in what arrived."""
        self.flush_buffers(force=not self.inq)
        self.pump()
        self.flush_acks(busy=bool(self.inq))
        await self.breathe()

    def decode(self, b: InBatch) -> list[Any]:
        return self.host.codec.decode(b.frames[0], b.frames[1:])

    def begin(self, b: InBatch) -> list[Any]:
        """Start processing a batch: decode it and count it in."""
        self.processing = b
        self.host.mark(self.index, b.src, b.seq)
        self._note_held()
        items = self.decode(b)
        return items

    def end(self, b: InBatch, outputs: list[Any] | None, edges: list[str] | None = None) -> None:
        """Processing of ``b`` is over: buffer its outputs and release it."""
        self.processing = None
        self.host.mark(self.index, 0, 0)
        if outputs:
            self.emit(outputs, b, edges)
        b.refs -= 1
        if b.refs == 0:
            self._complete(b)
        self._note_held()

    async def _process(self, b: InBatch) -> None:
        items = self.begin(b)
        t0 = time.perf_counter()
        try:
            outputs = await self.code.process(items)
        except Exception as exc:
            self.c.busy += time.perf_counter() - t0
            self.processing = None
            self.host.mark(self.index, 0, 0)
            await self.batch_failed(b, items, exc)
            return
        took = time.perf_counter() - t0
        self.c.busy += took
        self.c.latency[latency_bucket(took)] += 1
        self.end(b, outputs)

    async def batch_failed(self, b: InBatch, items: list[Any], exc: Exception) -> None:
        """User code raised on a batch: dead-letter it, or stop this replica."""
        self.c.errors += 1
        policy = self.spec.on_error
        if policy == "skip" or (policy == "restart" and b.attempt >= 1):
            src_stage = self._sender(b.src)
            path = self.dead_letter(
                self.spec.name,
                {
                    "replica": self.index,
                    "from": src_stage,
                    "batch": b.seq,
                    "attempt": b.attempt,
                    "records": b.records,
                    "error": f"{type(exc).__name__}: {exc}",
                    "where": f"{self.impl.where} at {user_frame(exc, self._impl_file)}",
                    "traceback": user_traceback(exc),
                },
                items,
            )
            log.warning(
                "%s: batch %d from %s (%d records) failed with %s: %s; written to %s",
                self.name,
                b.seq,
                src_stage,
                b.records,
                type(exc).__name__,
                exc,
                path,
            )
            b.status = ACK_DEAD
            self.c.records_dead += b.records
            self.end(b, None)
            return
        raise ReplicaFailure(exc, "process", b) from exc

    async def _report_failure(self, failure: ReplicaFailure) -> None:
        exc = failure.exc
        if self.spec.on_error == "restart":
            # Deliver what earlier batches produced, so only unfinished batches are redelivered.
            try:
                await asyncio.wait_for(self.drain(), timeout=10)
            except TimeoutError:
                log.warning("%s: could not deliver all outputs before restarting", self.name)
        b = failure.batch
        await self.host.report(
            {
                "t": "failed",
                "rid": self.rid,
                "phase": failure.phase,
                "error": f"{type(exc).__name__}: {exc}",
                "where": f"{self.impl.where} at {user_frame(exc, self._impl_file)}",
                "traceback": user_traceback(exc),
                "batch": None if b is None else [b.src, b.seq, b.records, b.attempt],
                "stats": self.snapshot(),
            }
        )

    def snapshot(self) -> dict[str, Any]:
        c = self.c
        for t, edge in self.edges.items():
            c.edges[t] = asdict(edge.counters)
            c.inflight[t] = edge.inflight + edge.pending
        c.incomplete = [list(x) for x in self.ctx.incomplete]
        c.warnings = list(self.ctx.warnings)
        c.progress_done, c.progress_total, c.progress_unit = self.ctx.done
        times = os.times()
        c.cpu = times.user + times.system
        c.rss = resident_bytes()
        return c.to_wire()
