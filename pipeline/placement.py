"""Where each replica runs: here, on a named host, or on a member of a group.

A stage's ``hosts`` names hosts of the topology (replica i on ``hosts[i % n]``) or a group
(``groups``), whose members join at run time (``pipeline worker TOPOLOGY --group G``): a
replica placed on a group goes to the member holding the fewest replicas when it starts,
and stays there while that member is in the frame (if it is lost, the replica's restart
goes to another member). An async stage's replicas share one worker, placed as its first.

A replica whose host is missing waits, and so does the first replica placed on a group
until as many members as the group asks for (``groups: {pool: 3}``) have joined, so that
a frame's replicas spread over the hosts started with it; later ones wait only while the
group has no member. The run fails, saying what to start where, if they do not come
within the topology's ``join_timeout``.

A stage declared ``replicas: members`` follows its group: it grows by one replica (on the
new member) for each member that joins, and when a member is stopped it drains and
retires the replica that member holds, which must be the stage's highest-numbered (a
stage shrinks from the top: keyed partitions and partial results are numbered). A member
stopped while it holds a lower-numbered replica is said to lose it when it goes, as a
lost host's replicas are.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from typing import TYPE_CHECKING

from pipeline.errors import ControlError
from pipeline.scaling import Rescale, check_scalable

if TYPE_CHECKING:
    from pipeline.hosts import Hosts
    from pipeline.supervisor import StageState, Supervisor
    from pipeline.topology import StageSpec, Topology

log = logging.getLogger("pipeline")


class Placement:
    """The placement of one frame's replicas (see the module docstring)."""

    def __init__(self, topology: Topology, hosts: Hosts) -> None:
        self.topology, self.hosts = topology, hosts
        #: (stage, index) -> the group member it was placed on
        self._member: dict[tuple[str, int], str] = {}
        #: since when something placed on each host or group has waited for it
        self._awaiting: dict[str, float] = {}
        self._said: set[tuple[str, str, str]] = set()
        #: the groups that had their members at the start
        self._gathered: set[str] = set()

    @staticmethod
    def _first(spec: StageSpec, index: int) -> int:
        return 0 if spec.kind == "async" else index

    def host(self, spec: StageSpec, index: int) -> str | None:
        """The host replica ``index`` runs (or is to run) on; None: here."""
        i = self._first(spec, index)
        target = self.topology.host_of(spec.name, i)
        if target in self.topology.groups:
            return self._member.get((spec.name, i))
        return target

    def place(self, st: StageState, indexes: list[int]) -> tuple[list[int], str | None]:
        """The ``indexes`` that can start now (their host is here or joined; a member of
        their group is chosen), and why the run must fail, if something waited too long."""
        now, ready = time.monotonic(), []
        for index in indexes:
            target = self._where(st.spec, index)
            if target is None:
                ready.append(index)
                continue
            if target not in self._awaiting:
                what = "group" if target in self.topology.groups else "host"
                log.info("stage '%s' waits for %s %s to join", st.spec.name, what, target)
            since = self._awaiting.setdefault(target, now)
            st.restart_at[index] = now + 0.5
            limit = self.topology.join_timeout
            if now - since > limit:
                where = self.topology.file or "TOPOLOGY"
                if target in self.topology.groups:
                    have = len(self.hosts.members(target))
                    return [], (f"group {target} has {have} of the {self._need(target)} "
                                f"member(s) it waits for after {limit:.0f}s: start 'pipeline "
                                f"worker {where} --group {target}' on its hosts, with the "
                                "frame's keys")  # fmt: skip
                return [], (f"host {target} did not join within {limit:.0f}s: start 'pipeline "
                            f"worker {where} --host {target}' there, with the frame's keys, or "
                            "place its stages elsewhere")  # fmt: skip
        return ready, None

    def _where(self, spec: StageSpec, index: int) -> str | None:
        """None if replica ``index`` can start now (placing it on a member if its stage is
        on a group); else the host or group it waits for."""
        i = self._first(spec, index)
        target = self.topology.host_of(spec.name, i)
        if target is None:
            return None
        if target not in self.topology.groups:
            if self.hosts.joined(target):
                self._awaiting.pop(target, None)
                return None
            return target
        members = self.hosts.members(target)
        if self._member.get((spec.name, i)) in members:  # it stays where it was placed
            return None
        if len(members) < self._need(target):
            return target
        self._gathered.add(target)
        self._awaiting.pop(target, None)
        load = Counter(m for m in self._member.values() if m in members)
        self._member[(spec.name, i)] = min(members, key=lambda m: load[m])
        return None

    def _need(self, group: str) -> int:
        """The members ``group`` waits for: as many as it asks for at the start, then one."""
        return 1 if group in self._gathered else self.topology.groups[group]

    def release(self, stage: str, index: int) -> None:
        """Replica ``index`` of ``stage`` was retired: its member holds it no more."""
        self._member.pop((stage, index), None)

    # ------------------------------------------------------------ replicas: members
    def follow(self, sup: Supervisor) -> None:
        """Grow or shrink each ``replicas: members`` stage with its group (one change at a
        time, as any rescale)."""
        if sup.rescale is not None or sup.draining or sup.failed:
            return
        for st in sup.stages.values():
            if st.spec.per_member and not st.ended:
                target = self._follow_target(st)
                if target is not None and target != st.desired:
                    try:
                        check_scalable(sup, st.spec.name, target)
                    except ControlError as exc:
                        self._say_once(st.spec.name, "refused", f"{exc}")
                        continue
                    sup.rescale = Rescale(sup, st, target)
                    return

    def _follow_target(self, st: StageState) -> int | None:
        """The replica count the stage should have now (None: leave it)."""
        name, group = st.spec.name, st.spec.hosts[0]
        top = st.desired - 1
        for m in self.hosts.members(group, leaving=True):
            held = sorted(i for (s, i), mm in self._member.items() if s == name and mm == m)
            if not held:
                continue
            if held[-1] == top and top > 0:
                return st.desired - 1
            if top == 0:
                self._say_once(name, m, f"member {m} is leaving while it holds the last replica "
                               f"of stage '{name}': it is lost when {m} goes")  # fmt: skip
            else:
                self._say_once(name, m, f"member {m} is leaving while it holds replica "
                               f"{held[-1]} of stage '{name}', not its highest-numbered "
                               f"({top}): stop the highest-numbered member first; the replica "
                               f"is lost when {m} goes")  # fmt: skip
        members = self.hosts.members(group)
        if len(members) > st.desired:
            return len(members)
        return None

    def _say_once(self, stage: str, about: str, what: str) -> None:
        if (stage, about, what) not in self._said:
            self._said.add((stage, about, what))
            log.warning("%s", what)
