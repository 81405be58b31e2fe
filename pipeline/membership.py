"""What the supervisor tells each replica: the membership, as that replica sees it.

One message per worker on every change, holding a section per replica there:

* ``up``: the live replicas that send to it (``[rid, stage, index, endpoint]``);
* ``down``: per stage it sends to, the members by index (``[index, rid, endpoint, state]``,
  ``rid`` None while one is down, ``state`` ``LIVE`` or ``RETIRING``), the key owner table,
  the stage's scaling epoch, replicas that ended well and whose acknowledgements are still
  to be awaited (``retired``), and batches suspected of killing a replica (``suspects``);
* ``ended``: its upstream stages that have ended;
* ``stop`` (drain) and ``self``: its own epoch, whether it retires, the key partitions that
  move (``migration``), the stage's replica count, and whether sources are paused.

The whole view is sent each time (never a diff), so a lost or late message is made good by
the next one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pipeline.flow import LIVE, RETIRING

if TYPE_CHECKING:
    from pipeline.supervisor import ReplicaState, StageState, Supervisor

#: retired replica ids kept in the membership, for senders that still await their acks
RETIRED_KEPT = 64


def members(sup: Supervisor, st: StageState) -> list[list[Any]]:
    """``[index, rid, endpoint, state]`` for every slot of a stage, retiring ones too."""
    out: list[list[Any]] = []
    for i in sorted(set(range(st.desired)) | st.retiring):
        rid = st.slots.get(i)
        peer = sup.replicas.get(rid) if rid is not None else None
        state = RETIRING if i in st.retiring else LIVE
        if peer is not None and peer.live:
            out.append([i, peer.rid, peer.endpoint, state])
        else:
            out.append([i, None, None, state])
    return out


def section(sup: Supervisor, r: ReplicaState) -> dict[str, Any]:
    topo = sup.topology
    ups = topo.upstream(r.stage)
    up = [
        [u.rid, u.stage, u.index, u.endpoint]
        for u in sup.replicas.values()
        if u.stage in ups and u.live
    ]
    down: dict[str, Any] = {}
    for target in topo.stage(r.stage).next:
        tst = sup.stages[target]
        down[target] = {
            "members": members(sup, tst),
            "owners": tst.owners,
            "epoch": tst.epoch,
            "retired": tst.retired[-RETIRED_KEPT:],
            "suspects": sup.suspects.get((r.rid, target), []),
        }
    st = sup.stages[r.stage]
    me: dict[str, Any] = {
        "epoch": st.epoch,
        "retire": r.index in st.retiring,
        "replicas": st.desired,
        "pause": sup.paused,
    }
    if st.migration is not None:
        peers = [[i, rid, ep] for i, rid, ep, _ in members(sup, st) if rid is not None]
        me["migration"] = {**st.migration, "peers": peers}
    return {
        "up": up,
        "down": down,
        "ended": [u for u in ups if sup.stages[u].ended],
        "stop": sup.draining,
        "self": me,
    }


def broadcast(sup: Supervisor) -> None:
    """Send every worker the membership as its replicas see it; a worker that cannot be
    reached now is tried again at the next step."""
    for wid, rids in sup.worker_rids.items():
        live = [sup.replicas[rid] for rid in rids if sup.replicas[rid].live]
        if not live or not sup.workers[wid].alive():
            continue
        sections = {r.rid: section(sup, r) for r in live}
        if not sup.sockets.send(wid, {"t": "peers", "replicas": sections}):
            sup.dirty()
            continue
        for r in live:  # suspects are told once, to the sender that holds them
            for target in sup.topology.stage(r.stage).next:
                sup.suspects.pop((r.rid, target), None)
