"""A replica's part in scaling its stage while data flows: fences, retiring, keyed state.

The supervisor raises a stage's *epoch* for each change and says, in each replica's own
membership section, whether the replica retires and whether key partitions move. Senders
answer a new epoch with a fence on every data channel into the stage (``flow``). Channels
keep order, so:

* a **retiring** replica, once it has a fence from every live sender (or their stage has
  ended), has all the input it will ever get: it processes it, runs ``finish`` and ends;
* in a **keyed** stage, a replica that gives partitions away waits for the fences, so every
  record of those partitions sent before the change has been processed, then exports their
  state (``export_state``) straight to the new owners; a replica that takes partitions in
  holds back every batch a sender sent after its fence until that state has arrived and been
  imported (``import_state``). Batches sent before the fences are processed as they come,
  so nothing waits that need not, and no record of a moving partition is processed on the
  wrong side of its state.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pipeline.flow import InBatch, state_frames

if TYPE_CHECKING:
    from pipeline.replica import Replica

log = logging.getLogger("pipeline.replica")


@dataclass
class Migration:
    """Key partitions moving at one epoch, as one replica of the stage sees them."""

    epoch: int
    #: partitions this replica gives away, by the index of the replica taking them
    give: dict[int, list[int]]
    #: partitions this replica takes in
    take: set[int]
    #: the stage's replicas by index: (replica id, inbox endpoint)
    peers: dict[int, tuple[int, str]]
    exported: bool = False
    taken: set[int] = field(default_factory=set)


def plan(me: int, old: list[int], new: list[int]) -> tuple[dict[int, list[int]], set[int]]:
    """What replica ``me`` gives away (by new owner) and takes in, from the owner tables
    before and after.

    >>> plan(0, [0, 0, 1, 1], [0, 2, 1, 2])
    ({2: [1]}, set())
    >>> plan(2, [0, 0, 1, 1], [0, 2, 1, 2])
    ({}, {1, 3})
    """
    give: dict[int, list[int]] = {}
    take: set[int] = set()
    for p, (before, after) in enumerate(zip(old, new, strict=True)):
        if before == me and after != me:
            give.setdefault(after, []).append(p)
        elif after == me and before != me:
            take.add(p)
    return give, take


class Handover:
    """The scaling state of one replica (see the module docstring)."""

    def __init__(self, replica: Replica) -> None:
        self.r = replica
        #: the stage's epoch, as last told by the supervisor
        self.epoch = 0
        self.retire = False
        #: the highest epoch each sender has fenced
        self.fences: dict[int, int] = {}
        self.migration: Migration | None = None
        self.done_epoch = 0
        #: batches sent after a fence, held until the partitions moving here have arrived
        self.held: deque[InBatch] = deque()
        #: state that arrived: (sender, epoch, partitions, frames), imported in order
        self.incoming: deque[tuple[int, int, list[int], list[Any]]] = deque()

    # -- news -----------------------------------------------------------------------------
    def on_section(self, me: dict[str, Any]) -> None:
        """The replica's own part of a membership message."""
        self.epoch = max(self.epoch, int(me.get("epoch", 0)))
        self.retire = bool(me.get("retire", False))
        mig = me.get("migration")
        if mig is None and self.migration is not None:
            self._abandon()
        if (
            mig is not None
            and mig["epoch"] > self.done_epoch
            and (self.migration is None or self.migration.epoch != mig["epoch"])
        ):
            give, take = plan(self.r.index, mig["old"], mig["new"])
            peers = {int(i): (int(rid), str(ep)) for i, rid, ep in mig["peers"]}
            self.migration = Migration(mig["epoch"], give, take, peers)
            log.debug("%s: epoch %d: gives %s, takes %s", self.r.name, mig["epoch"], give, take)

    def on_fence(self, src: int, epoch: int) -> None:
        self.fences[src] = max(self.fences.get(src, 0), epoch)

    def on_state(self, src: int, epoch: int, partitions: list[int], frames: list[Any]) -> None:
        self.incoming.append((src, epoch, partitions, frames))

    # -- questions ------------------------------------------------------------------------
    def fenced_all(self, epoch: int) -> bool:
        """Every live sender has fenced ``epoch`` (senders of ended stages need not)."""
        r = self.r
        return all(
            self.fences.get(rid, 0) >= epoch for rid, up in r.up.items() if up.stage not in r.ended
        )

    def holds(self, b: InBatch) -> bool:
        """``b`` must wait: it was sent after its sender's fence, and partitions are still
        on their way here."""
        m = self.migration
        return m is not None and bool(m.take) and self.fences.get(b.src, 0) >= m.epoch

    def input_complete(self) -> bool:
        """A retiring replica has everything it will get (and nothing held back)."""
        return (
            self.retire and self.migration is None and not self.held and self.fenced_all(self.epoch)
        )

    @property
    def busy(self) -> bool:
        """A migration is under way here."""
        return self.migration is not None

    # -- steps ----------------------------------------------------------------------------
    async def advance(self) -> bool:
        """Take whatever step of a migration is possible now; True if one was taken."""
        m = self.migration
        if m is None:
            return False
        progressed = False
        if not m.exported and (not m.give or self.fenced_all(m.epoch)):
            await self._export(m)
            progressed = True
        while self.incoming:
            _src, epoch, partitions, frames = self.incoming.popleft()
            if epoch != m.epoch:
                log.warning("%s: state of epoch %d arrived during epoch %d; ignored",
                            self.r.name, epoch, m.epoch)  # fmt: skip
                continue
            r = self.r
            state = r.host.codec.decode(frames[0], frames[1:])[0]
            if r.code.hands_over:
                await r.user_step(r.code.import_state(state))
            m.taken.update(partitions)
            progressed = True
        if m.exported and m.take <= m.taken:
            await self._complete(m)
            progressed = True
        return progressed

    async def _export(self, m: Migration) -> None:
        r = self.r
        for index, partitions in sorted(m.give.items()):
            rid, endpoint = m.peers[index]
            # a stage without keyed state (a transform) sends nothing but the news
            state = (
                await r.user_step(r.code.export_state(partitions)) if r.code.hands_over else None
            )
            body = r.host.codec.encode([state])
            r.host.use(endpoint)  # kept open: closing at once could drop what is queued
            r.host.send(endpoint, state_frames(r.rid, rid, m.epoch, partitions, body))
        m.exported = True

    def _abandon(self) -> None:
        """The supervisor called the migration off (the stage's input ended first): keep
        what is here, process what was held."""
        log.debug(
            "%s: epoch %d called off", self.r.name, self.migration.epoch if self.migration else 0
        )
        self.migration = None
        self.r.inq.extendleft(reversed(self.held))
        self.held.clear()

    async def _complete(self, m: Migration) -> None:
        r = self.r
        self.migration = None
        self.done_epoch = m.epoch
        r.inq.extendleft(reversed(self.held))
        self.held.clear()
        await r.host.report({"t": "migrated", "rid": r.rid, "epoch": m.epoch})
