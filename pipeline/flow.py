"""Credit, windows, acknowledgements and redelivery: the data-path protocol, with no I/O.

Why it is built this way (see also ``transport``):

* **Credit, not high-water marks.** A receiving replica grants each sending replica a fixed
  credit (``backpressure.credit`` batches). A sender only hands a batch to a replica that has
  free credit, so a slow replica can never hoard more than its credit while its siblings idle
  (plain PUSH round-robins blindly into per-peer queues of up to 1000 messages).
* **A window per edge.** A sender keeps at most ``backpressure.window`` unacknowledged batches
  on one outgoing edge. When the window is full the stage stops producing, so a slow stage
  slows its sources instead of growing memory.
* **Acknowledgements carry completion.** A replica acknowledges an input batch only when every
  output batch made from it has itself been acknowledged downstream (reference counts), and
  a sender keeps every unacknowledged batch. If a replica dies, the supervisor tells its
  senders, who deliver its unacknowledged batches again, to a sibling or to its restarted
  incarnation: nothing accepted is lost; only a replica killed outright can cause a batch to
  be processed twice (at-least-once).
* **Redelivery once.** A batch that was being processed when its replica failed is marked
  suspect; if it fails again it goes to the dead-letter file instead of crashing again.
* **Keys go to partitions, partitions to replicas.** See ``routing``; the owner table arrives
  from the supervisor with the membership, so it can change while data flows.
* **Membership comes from the supervisor**, as a full list of current replicas (ids are never
  reused, so a restarted replica is a new peer). End of stream is counted by the supervisor
  per stage, never by counting messages on the data path, so replicas may join and leave.
* **Fences mark a change.** When a stage is scaled its *epoch* goes up. A sender that learns
  of a new epoch first re-splits what it has queued by the new owner table, then sends every
  replica of that stage a fence on the data channel. A channel keeps order, so a replica that
  has a fence from a sender has every batch that sender sent before the change: a retiring
  replica knows its input is complete, and a keyed replica knows when it may hand over the
  state of the partitions it gives away.
* **Retiring is not dying.** A replica being removed gets nothing new, processes and
  acknowledges what it holds, and ends; its senders keep what it has not acknowledged yet
  rather than deliver it again, because its acknowledgements are on their way.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pipeline.codec import Buffer, Codec, item_nbytes, item_records, pack
from pipeline.routing import BROADCAST, KEY, Route, split_by_owner
from pipeline.stats import EdgeCounters

DATA = "D"
ACK = "A"
CREDIT = "C"
FENCE = "F"
STATE = "S"

#: a member of a stage as the supervisor lists it: live, or retiring (sent nothing new)
LIVE = 0
RETIRING = 1

ACK_OK = 0
ACK_DEAD = 1


@dataclass(eq=False)
class InBatch:
    """A batch received by this replica."""

    src: int
    seq: int
    attempt: int
    records: int
    frames: list[Any]
    #: one reference while processing, plus one per output batch not yet acknowledged
    refs: int = 1
    status: int = ACK_OK
    items: list[Any] | None = None
    #: a fence of this epoch from ``src``, not data: it keeps its place in the queue
    fence: int = 0


@dataclass(eq=False)
class OutBatch:
    """A batch this replica sends, kept until the receiver acknowledges it."""

    seq: int
    frames: list[Buffer]
    records: int
    index: int | None
    parents: list[InBatch]
    attempt: int = 0
    #: counted in the edge's ``*_sent`` figures (a redelivery is not counted again)
    counted: bool = False
    #: (replica, seq) it was last sent as, while it waits to be delivered again
    was: tuple[int, int] | None = None


@dataclass(eq=False)
class Peer:
    """A downstream replica as one sender sees it."""

    rid: int
    index: int
    endpoint: str
    credit: int = 0
    unacked: dict[int, OutBatch] = field(default_factory=dict)
    #: being removed: it gets nothing new, but its acknowledgements are awaited
    retiring: bool = False

    @property
    def free(self) -> int:
        return self.credit - len(self.unacked)


def cut(items: Sequence[Any], size: int, max_bytes: int) -> list[list[Any]]:
    """Split items into batches of at most ``size`` items and about ``max_bytes``."""
    out: list[list[Any]] = []
    cur: list[Any] = []
    nbytes = 0
    for item in items:
        cur.append(item)
        nbytes += item_nbytes(item)
        if len(cur) >= size or nbytes >= max_bytes:
            out.append(cur)
            cur, nbytes = [], 0
    if cur:
        out.append(cur)
    return out


class OutEdge:
    """The sending side of one edge (this replica -> every replica of one stage)."""

    def __init__(
        self,
        target: str,
        route: Route,
        window: int,
        batch_size: int,
        batch_bytes: int,
        spread: int = 0,
    ) -> None:
        self.target = target
        self.route = route
        self.window = window
        self.batch_size = batch_size
        self.batch_bytes = batch_bytes
        #: items per batch of plain records, learnt from their encoded size
        self.plain_size = batch_size
        self.peers: dict[int, Peer] = {}  # by replica index
        self.by_rid: dict[int, Peer] = {}
        self.owners = np.zeros(route.partitions, dtype=np.intp)
        self.indexes: list[int] = []
        self.queue: deque[OutBatch] = deque()  # any replica (round-robin)
        self.queues: dict[int, deque[OutBatch]] = {}  # one replica (key, broadcast)
        self.inflight = 0
        #: the target stage's scaling epoch this sender has fenced
        self.epoch = 0
        #: retired replicas whose last acknowledgements are still on their way
        self.leaving: dict[int, Peer] = {}
        self._requeued: dict[tuple[int, int], OutBatch] = {}
        self._seq = 0
        self._cursor = spread  # senders start at different replicas
        self.counters = EdgeCounters()

    # -- producing ----------------------------------------------------------------------
    def add(
        self, items: Sequence[Any], parents: list[InBatch], codec: Codec, plain: bool = False
    ) -> None:
        """Encode ``items`` into batches for this edge; each holds a reference on ``parents``.
        ``plain`` says no item is an array or ``Columns`` (one record each, no buffers): such
        batches are cut by count, a count that adapts so the encoded batch stays near
        ``batch_bytes`` however large the records are.

        All or nothing: if an item cannot be routed or encoded (``KeyRouteError``,
        ``WireError``) nothing is queued and no reference is taken."""
        if self.route.kind == KEY:
            assert self.route.field is not None
            groups: Iterable[tuple[int | None, Sequence[Any]]] = split_by_owner(
                items, self.route.field, self.owners
            ).items()
        else:
            groups = [(None, items)]
        made: list[tuple[int | None, list[Buffer], int]] = []
        for index, group in groups:
            chunks: Sequence[Sequence[Any]]
            if plain:
                size = self.plain_size
                chunks = [group[i : i + size] for i in range(0, len(group), size)]
            else:
                chunks = cut(group, self.batch_size, self.batch_bytes)
            for chunk in chunks:
                frames = codec.encode(chunk)
                if plain:
                    records = len(chunk)
                    self._learn_size(len(frames[0]), records)
                else:
                    records = sum(item_records(i) for i in chunk)
                made.append((index, frames, records))
        for index, frames, records in made:
            if self.route.kind == BROADCAST:
                for idx in self.indexes:
                    self._push(OutBatch(self._next_seq(), frames, records, idx, parents))
            else:
                self._push(OutBatch(self._next_seq(), frames, records, index, parents))

    def _learn_size(self, nbytes: int, records: int) -> None:
        per_record = max(1.0, nbytes / max(records, 1))
        self.plain_size = max(1, min(self.batch_size, int(self.batch_bytes / per_record)))

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _push(self, batch: OutBatch) -> None:
        for p in batch.parents:
            p.refs += 1
        if batch.index is None:
            self.queue.append(batch)
        else:
            self.queues.setdefault(batch.index, deque()).append(batch)

    @property
    def pending(self) -> int:
        """Batches made but not yet handed to a replica."""
        return len(self.queue) + sum(len(q) for q in self.queues.values())

    @property
    def idle(self) -> bool:
        return self.inflight == 0 and self.pending == 0

    # -- sending ------------------------------------------------------------------------
    def sendable(self) -> list[tuple[Peer, OutBatch]]:
        """Batches that may go now, each with the replica it goes to."""
        out: list[tuple[Peer, OutBatch]] = []
        while self.queue and self.inflight < self.window:
            peer = self._pick()
            if peer is None:
                break
            out.append((peer, self._assign(peer, self.queue.popleft())))
        for index, q in self.queues.items():
            peer = self.peers.get(index)
            if peer is not None and peer.retiring:
                continue
            while q and peer is not None and peer.free > 0 and self.inflight < self.window:
                out.append((peer, self._assign(peer, q.popleft())))
        return out

    def _pick(self) -> Peer | None:
        peers = list(self.peers.values())
        n = len(peers)
        best: Peer | None = None
        for k in range(n):
            peer = peers[(self._cursor + k) % n]
            if peer.retiring:
                continue
            if peer.free > 0 and (best is None or peer.free > best.free):
                best = peer
        if best is not None:
            self._cursor = (peers.index(best) + 1) % n
        return best

    def _assign(self, peer: Peer, batch: OutBatch) -> OutBatch:
        peer.unacked[batch.seq] = batch
        self.inflight += 1
        c = self.counters
        c.inflight_max = max(c.inflight_max, self.inflight)
        if not batch.counted:
            c.batches_sent += 1
            c.records_sent += batch.records
            batch.counted = True
        return batch

    # -- feedback -----------------------------------------------------------------------
    def on_credit(self, rid: int, limit: int) -> None:
        peer = self.by_rid.get(rid)
        if peer is not None:
            peer.credit = limit

    def on_ack(self, rid: int, seq: int, status: int) -> list[InBatch]:
        """Record an acknowledgement; returns input batches whose outputs are all delivered."""
        peer = self.by_rid.get(rid) or self.leaving.get(rid)
        if peer is None:
            return self._late_ack(rid, seq, status)
        batch = peer.unacked.pop(seq, None)
        if batch is None:
            return []
        if not peer.unacked and rid in self.leaving:
            del self.leaving[rid]
        self.inflight -= 1
        if batch.was is not None:
            self._requeued.pop(batch.was, None)
        return self._delivered(batch, status)

    def _delivered(self, batch: OutBatch, status: int) -> list[InBatch]:
        if status == ACK_DEAD:
            self.counters.records_dead += batch.records
        else:
            self.counters.records_acked += batch.records
        done = []
        for p in batch.parents:
            p.refs -= 1
            if p.refs == 0:
                done.append(p)
        return done

    def _late_ack(self, rid: int, seq: int, status: int) -> list[InBatch]:
        """An acknowledgement from a replica already declared gone (it overtook the news).
        If its batch waits to be delivered again, it need not be: take it back."""
        batch = self._requeued.pop((rid, seq), None)
        if batch is None:
            return []
        queue = self.queue if batch.index is None else self.queues.get(batch.index)
        if queue is None or batch not in queue:
            return []  # already handed to another replica: it may be processed twice
        queue.remove(batch)
        return self._delivered(batch, status)

    def set_members(
        self,
        members: Sequence[Sequence[Any]],
        owners: Sequence[int] | None,
        suspects: Iterable[int] = (),
        retired: Iterable[int] = (),
    ) -> tuple[list[Peer], list[tuple[Peer, OutBatch]]]:
        """Apply the supervisor's view of the target stage: ``(index, rid, endpoint[,
        state])`` per replica, ``rid`` None while a replica is down, ``state`` ``LIVE`` or
        ``RETIRING``. Unacknowledged batches of replicas that are gone are queued again,
        except those of ``retired`` replicas (ended well: their acknowledgements are on the
        way); a *suspect* one (being processed when its replica died) counts as a further
        attempt, and one that was already delivered again is returned as condemned instead:
        it goes to the dead-letter file (see ``condemn``). Returns the peers that are gone
        and the condemned batches."""
        suspect = set(suspects)
        ended_well = set(retired)
        current = {m[0]: (m[1], m[2], m[3] if len(m) > 3 else LIVE) for m in members}
        gone: list[Peer] = []
        for idx, peer in list(self.peers.items()):
            if current.get(idx, (None, None, LIVE))[0] != peer.rid:
                gone.append(peer)
                del self.peers[idx]
                del self.by_rid[peer.rid]
        condemned: list[tuple[Peer, OutBatch]] = []
        for peer in gone:
            if peer.rid in ended_well:
                if peer.unacked:
                    self.leaving[peer.rid] = peer
            else:
                condemned.extend(self._requeue(peer, suspect))
        for idx, (rid, ep, state) in current.items():
            if rid is not None and ep is not None and idx not in self.peers:
                peer = Peer(rid, idx, ep)
                self.peers[idx] = peer
                self.by_rid[rid] = peer
            if idx in self.peers:
                self.peers[idx].retiring = state == RETIRING
        self.indexes = sorted(i for i, (_, _, state) in current.items() if state == LIVE)
        if owners is not None:
            self.owners = np.asarray(owners, dtype=np.intp)
        return gone, condemned

    def reroute(self, codec: Codec) -> None:
        """Split the queued keyed batches again by the current owner table (it changed):
        each new batch holds the references its old one held."""
        if self.route.kind != KEY or not any(self.queues.values()):
            return
        assert self.route.field is not None
        old = [b for q in self.queues.values() for b in q]
        self.queues.clear()
        for batch in sorted(old, key=lambda b: b.seq):
            items = codec.decode(batch.frames[0], batch.frames[1:])
            for index, group in split_by_owner(items, self.route.field, self.owners).items():
                for chunk in cut(group, self.batch_size, self.batch_bytes):
                    frames = codec.encode(chunk)
                    records = sum(item_records(i) for i in chunk)
                    new = OutBatch(self._next_seq(), frames, records, index, batch.parents)
                    new.counted, new.attempt = batch.counted, batch.attempt
                    self._push(new)
            if batch.was is not None:  # a late acknowledgement can no longer take it back
                self._requeued.pop(batch.was, None)
            for p in batch.parents:  # the new batches took their own references
                p.refs -= 1

    def _requeue(self, peer: Peer, suspect: set[int]) -> list[tuple[Peer, OutBatch]]:
        batches = sorted(peer.unacked.values(), key=lambda b: b.seq)
        peer.unacked.clear()
        self.inflight -= len(batches)
        condemned = []
        for b in reversed(batches):
            if b.seq in suspect:
                if b.attempt >= 1:
                    condemned.append((peer, b))
                    continue
                b.attempt += 1
            self.counters.redelivered += 1
            b.was = (peer.rid, b.seq)
            self._requeued[b.was] = b
            if b.index is None:
                self.queue.appendleft(b)
            else:
                self.queues.setdefault(b.index, deque()).appendleft(b)
        return condemned

    def condemn(self, batch: OutBatch) -> list[InBatch]:
        """Count a condemned batch as dead-lettered; returns parents now complete."""
        return self._delivered(batch, ACK_DEAD)


def data_frames(src: int, dst: int, batch: OutBatch) -> list[Buffer]:
    return [pack([DATA, src, dst, batch.seq, batch.attempt, batch.records]), *batch.frames]


def ack_frames(src: int, dst: int, acks: list[tuple[int, int]]) -> list[Buffer]:
    return [pack([ACK, src, dst, acks])]


def credit_frames(src: int, dst: int, limit: int) -> list[Buffer]:
    return [pack([CREDIT, src, dst, limit])]


def fence_frames(src: int, dst: int, epoch: int) -> list[Buffer]:
    return [pack([FENCE, src, dst, epoch])]


def state_frames(
    src: int, dst: int, epoch: int, partitions: list[int], body: list[Buffer]
) -> list[Buffer]:
    return [pack([STATE, src, dst, epoch, partitions]), *body]
