"""The status of a running frame: what ``pipeline status``, the monitor, the web page and
the MQTT bridge show.

Built by the supervisor from the counters its replicas report every ``stats_interval``;
rates, busy and CPU shares and batch latencies are taken over the time since the previous
status (about a second), totals since the start. Per stage:

* ``desired`` and ``alive`` replicas (and ``retiring`` ones during a scale-down);
* ``records_in``/``records_out`` and their rates per second;
* ``backlog``: batches waiting for the stage, queued or unacknowledged at its senders, plus
  those its replicas hold;
* ``busy``: share of time in stage code, per replica and averaged over the stage's replicas
  (1 = every replica always busy); ``cpu`` (share of a core) and ``rss`` (bytes), per
  replica and summed;
* ``p50``/``p99``: batch processing time, seconds; ``errors``: batches that failed;
* ``progress``: done, total and unit, for stages that say how far they are;
* per replica, the ``host`` it runs on (None: the coordinator's).

And ``hosts``: the other hosts that joined the frame (``pipeline worker``), each with its
group (None: a host named in the topology), ``state`` (joined, leaving, left or lost) and how
many of the frame's workers run there.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

from pipeline.stats import LATENCY_BUCKETS, percentile

if TYPE_CHECKING:
    from pipeline.supervisor import Supervisor


def _rate(now: float, before: float, seconds: float) -> float:
    return max(0.0, (now - before) / seconds) if seconds > 0 else 0.0


class StatusTracker:
    """Remembers the counters each replica reported at the previous status, for rates."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.prev_time = self.t0
        self.prev: dict[int, dict[str, Any]] = {}

    def build(self, sup: Supervisor) -> dict[str, Any]:
        now = time.monotonic()
        dt = now - self.prev_time
        stages: dict[str, Any] = {}
        current: dict[int, dict[str, Any]] = {}
        waiting: dict[str, int] = {}  # batches at senders for each stage
        for sender in sup.replicas.values():
            if sender.stats is None:
                continue
            for target, n in sender.stats.get("inflight", {}).items():
                if sender.state in ("starting", "running"):
                    waiting[target] = waiting.get(target, 0) + n
        all_totals = sup.live_totals()
        for name, st in sup.stages.items():
            replicas = []
            lat = [0] * LATENCY_BUCKETS
            for rid in st.incarnations:
                r = sup.replicas.get(rid)
                if r is None or r.stats is None:
                    continue
                s = r.stats
                current[rid] = s
                before = self.prev.get(rid, {})
                for k, n in enumerate(s.get("latency", ())[:LATENCY_BUCKETS]):
                    lat[k] += n - (before.get("latency") or [0] * LATENCY_BUCKETS)[k]
                if r.state not in ("starting", "running"):
                    continue
                worker = sup.workers.get(r.worker)
                replicas.append({
                    "index": r.index,
                    "rid": rid,
                    "pid": r.pid,
                    "host": worker.host if worker is not None else None,
                    "state": "retiring" if r.index in st.retiring else r.state,
                    "records_in": s["records_in"],
                    "records_out": s["records_out"],
                    "rate_in": _rate(s["records_in"], before.get("records_in", 0), dt),
                    "rate_out": _rate(s["records_out"], before.get("records_out", 0), dt),
                    "held": s.get("held", 0),
                    "busy": _rate(s["busy"], before.get("busy", 0.0), dt),
                    "cpu": _rate(s["cpu"], before.get("cpu", s["cpu"]), dt),
                    "rss": s.get("rss", 0),
                    "errors": s["errors"],
                })  # fmt: skip
            totals = all_totals[name]
            stages[name] = {
                "kind": st.spec.kind,
                "role": st.spec.role.value if st.spec.role else None,
                "route": st.spec.route.describe(),
                "next": list(st.spec.next),
                "desired": st.desired,
                "alive": sum(1 for x in replicas if x["state"] == "running"),
                "retiring": sorted(st.retiring),
                "ended": st.ended,
                "records_in": totals.records_in,
                "records_out": totals.records_out,
                "rate_in": sum(x["rate_in"] for x in replicas),
                "rate_out": sum(x["rate_out"] for x in replicas),
                "backlog": waiting.get(name, 0) + sum(x["held"] for x in replicas),
                "busy": sum(x["busy"] for x in replicas) / max(1, len(replicas)),
                "cpu": sum(x["cpu"] for x in replicas),
                "rss": sum(x["rss"] for x in replicas),
                "errors": totals.errors,
                "p50": percentile(lat, 0.5),
                "p99": percentile(lat, 0.99),
                "progress": [totals.progress_done, totals.progress_total, totals.progress_unit]
                if totals.progress_total
                else None,
                "replicas": replicas,
            }
        self.prev = current
        self.prev_time = now
        state = "stopping" if sup.draining else ("paused" if sup.paused else "running")
        if sup.failed:
            state = "failing"
        return {
            "frame": sup.topology.name,
            "run_id": sup.rundir.run_id,
            "run_dir": str(sup.rundir.path),
            "pid": os.getpid(),
            "state": state,
            "uptime": now - self.t0,
            "rescale": sup.rescale.describe() if sup.rescale else None,
            "stages": stages,
            "hosts": sup.hosts.describe(),
            "errors": list(sup.errors),
        }
