"""Changing a stage's replica count while data flows: the supervisor's side.

One rescale runs at a time. Scaling **up** starts the new replicas; once they are live,
senders include them (and, in a keyed stage, partitions move to them). Scaling **down**
retires the highest-numbered replicas: they get nothing new, finish what they hold, run
``finish`` (a stateful stage's partial result goes downstream, where partials add up, as
with several replicas from the start) and end. In a **keyed** stage the owner table changes
at a new epoch and the state of every moving partition goes from its old owner to its new
one (``pipeline.handover``) before any record sent after the change is processed there.

A stage refuses to scale, with the reason, when it is declared ``scalable: false``, is a
source (its replicas split the input by number), broadcasts (a new replica would miss what
came before), or keeps keyed state it cannot hand over (no ``export_state``/``import_state``).
"""

from __future__ import annotations

import logging
import time
from collections import Counter, deque
from typing import TYPE_CHECKING, Any

from pipeline.contract import Role, resolve
from pipeline.errors import ControlCode, ControlError
from pipeline.routing import BROADCAST, KEY

if TYPE_CHECKING:
    from pipeline.supervisor import StageState, Supervisor

log = logging.getLogger("pipeline")

#: more replicas than this for one stage is surely a typing error
MAX_REPLICAS = 256


def rebalance(owners: list[int], replicas: int) -> list[int]:
    """A new owner table (partition -> replica index) for ``replicas`` replicas that moves
    as few partitions as possible and leaves each replica within one of its fair share.

    >>> rebalance([0, 1, 0, 1], 4)
    [0, 1, 2, 3]
    >>> rebalance([0, 1, 2, 3], 2)
    [0, 1, 0, 1]
    """
    n = len(owners)
    quota = [n // replicas + (1 if i < n % replicas else 0) for i in range(replicas)]
    new = [o if 0 <= o < replicas else -1 for o in owners]
    counts = Counter(o for o in new if o >= 0)
    for p in reversed(range(n)):  # take from replicas above their share
        o = new[p]
        if o >= 0 and counts[o] > quota[o]:
            counts[o] -= 1
            new[p] = -1
    free = deque(i for i in range(replicas) for _ in range(quota[i] - counts.get(i, 0)))
    for p in range(n):
        if new[p] == -1:
            new[p] = free.popleft()
    return new


def check_scalable(sup: Supervisor, stage: str, replicas: Any) -> StageState:
    """The stage, if it may be scaled to ``replicas`` now; else ``ControlError`` saying why."""
    st = sup.stages.get(stage)
    if st is None:
        known = ", ".join(sup.stages)
        raise ControlError(ControlCode.NO_SUCH_STAGE, f"no stage '{stage}' (stages: {known})")
    if isinstance(replicas, bool) or not isinstance(replicas, int):
        msg = f"the replica count must be a whole number, got {replicas!r}"
        raise ControlError(ControlCode.BAD_REQUEST, msg)
    if not 1 <= replicas <= MAX_REPLICAS:
        msg = f"the replica count must be from 1 to {MAX_REPLICAS}, got {replicas}"
        raise ControlError(ControlCode.BAD_REQUEST, msg)
    spec = st.spec
    why = None
    if not spec.scalable:
        why = "it is declared scalable: false in the topology"
    elif spec.role is Role.SOURCE or not sup.topology.upstream(stage):
        why = (
            "it is a source: its replicas split the input between them by number; change "
            "replicas in the topology and start again"
        )
    elif spec.route.kind == BROADCAST:
        why = "its input is broadcast: a new replica would miss every record before it"
    elif spec.route.kind == KEY and spec.role in (Role.STATEFUL, Role.MASS):
        obj = resolve(spec.run)
        if not (callable(getattr(obj, "export_state", None))
                and callable(getattr(obj, "import_state", None))):  # fmt: skip
            why = (
                f"it keeps state per key, and {spec.run} cannot hand the state of a key "
                "partition over (give it export_state(partitions, ctx) and "
                "import_state(state, ctx), or declare scalable: false)"
            )
    if why:
        raise ControlError(ControlCode.REFUSED, f"stage '{stage}' cannot be scaled: {why}")
    if st.ended:
        msg = f"stage '{stage}' has ended: it has no more input"
        raise ControlError(ControlCode.NOT_RUNNING, msg)
    if sup.draining or sup.failed:
        raise ControlError(ControlCode.NOT_RUNNING, "the frame is stopping")
    if sup.rescale is not None:
        other = sup.rescale
        msg = (
            f"stage '{other.stage}' is being scaled to {other.target} replicas; "
            "try again when that is done"
        )
        raise ControlError(ControlCode.CONFLICT, msg)
    return st


class Rescale:
    """One change of a stage's replica count, stepped by the supervisor until done."""

    def __init__(self, sup: Supervisor, st: StageState, target: int) -> None:
        self.stage = st.spec.name
        self.target = target
        self.before = st.desired
        self.keyed = st.spec.route.kind == KEY
        self.t0 = time.monotonic()
        self.phase = "starting"
        self.migrated: set[int] = set()
        st.desired = max(st.desired, target)  # new replicas start now; old ones stay
        sup.dirty()
        log.info("scaling stage '%s' from %d to %d replicas", self.stage, self.before, target)

    def describe(self) -> dict[str, Any]:
        return {"stage": self.stage, "from": self.before, "to": self.target,
                "phase": self.phase, "seconds": round(time.monotonic() - self.t0, 3)}  # fmt: skip

    def on_migrated(self, rid: int, epoch: int, st: StageState) -> None:
        if self.phase == "migrating" and epoch == st.epoch:
            self.migrated.add(rid)

    def step(self, sup: Supervisor) -> bool:
        """Move on if possible; True once the rescale is complete."""
        st = sup.stages[self.stage]
        if self.phase in ("starting", "migrating") and self._input_ended(sup, st):
            return self._abandon(sup, st)
        if self.phase == "starting":
            if not all(sup.slot_live(st, i) for i in range(st.desired)):
                return False
            if self.keyed:
                self._migrate(sup, st)
            elif self.target < self.before:
                self._retire(sup, st)
            else:
                return self._done(st)
        if self.phase == "migrating":
            live = {st.slots[i] for i in range(max(self.before, self.target))}
            if not live <= self.migrated:
                return False
            st.migration = None
            if self.target < self.before:
                self._retire(sup, st)
            else:
                return self._done(st)
        if self.phase == "retiring":
            if st.retiring:
                return False
            return self._done(st)
        return False

    @staticmethod
    def _input_ended(sup: Supervisor, st: StageState) -> bool:
        """A replica of the stage has already ended: its input is complete."""
        return any(
            rid is not None and sup.replicas[rid].state == "done" for rid in st.slots.values()
        )

    def _abandon(self, sup: Supervisor, st: StageState) -> bool:
        """The stage's input ended before the change could be made: there is nothing left to
        spread. Every replica keeps what it has and ends (a stateful stage's partial results
        add up downstream), so nothing is lost; the replica count stays as it is."""
        st.migration = None
        st.desired = max(self.before, self.target)
        self.phase = "done"
        sup.dirty()
        log.info("stage '%s': its input ended before the scale was done; left at %d replicas",
                 self.stage, st.desired)  # fmt: skip
        return True

    def _migrate(self, sup: Supervisor, st: StageState) -> None:
        assert st.owners is not None
        old = list(st.owners)
        new = rebalance(old, self.target)
        st.epoch += 1
        st.owners = new
        st.migration = {"epoch": st.epoch, "old": old, "new": new}
        moved = sum(1 for a, b in zip(old, new, strict=True) if a != b)
        log.info("stage '%s': %d of %d key partitions move (epoch %d)",
                 self.stage, moved, len(new), st.epoch)  # fmt: skip
        self.phase = "migrating"
        sup.dirty()

    def _retire(self, sup: Supervisor, st: StageState) -> None:
        if not self.keyed:
            st.epoch += 1
        st.retiring = set(range(self.target, self.before))
        st.desired = self.target
        self.phase = "retiring"
        sup.dirty()

    def _done(self, st: StageState) -> bool:
        self.phase = "done"
        st.scaled.append(st.desired)
        log.info("stage '%s' now runs %d replicas (%.1fs)",
                 self.stage, st.desired, time.monotonic() - self.t0)  # fmt: skip
        return True
