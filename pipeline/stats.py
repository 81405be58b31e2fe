"""Counters: what each replica reports, and what the supervisor makes of them.

Each replica sends its counters on the stats socket every ``stats_interval`` and once more,
exactly, with its end-of-stream report on the control socket. At the end of a run the
supervisor sums them per stage, checks that what left every stage arrived at the next
(``check_accounting``), prints one line per stage and writes ``summary.json``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

#: latency buckets: below 1 us, 2 us, 4 us, ... 2**26 us (67 s), and above
LATENCY_BUCKETS = 28


def latency_bucket(seconds: float) -> int:
    """The bucket of a batch that took ``seconds``."""
    micros = int(seconds * 1e6)
    return min(LATENCY_BUCKETS - 1, micros.bit_length())


def percentile(buckets: list[int], q: float) -> float | None:
    """The ``q`` quantile (0..1) of a latency histogram, in seconds (the upper edge of its
    bucket), or None if it is empty.

    >>> percentile([0, 0, 3, 1] + [0] * 24, 0.5)
    4e-06
    """
    total = sum(buckets)
    if total <= 0:
        return None
    rank = q * total
    seen = 0
    for k, n in enumerate(buckets):
        seen += n
        if seen >= rank and n:
            return (1 << k) / 1e6
    return (1 << (len(buckets) - 1)) / 1e6


_PAGE = os.sysconf("SC_PAGE_SIZE")


def resident_bytes() -> int:
    """Resident memory of this process (Linux; 0 where ``/proc`` has no answer)."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return 0


@dataclass
class ReplicaCounters:
    records_in: int = 0
    batches_in: int = 0
    #: records out of the user code (before fan-out to several stages)
    records_out: int = 0
    #: batches that failed in user code (dead-lettered or fatal)
    errors: int = 0
    records_dead: int = 0
    #: CPU seconds (user + system) of the worker process hosting the replica
    cpu: float = 0.0
    #: seconds in user code, waiting for input, waiting for credit downstream
    busy: float = 0.0
    wait_input: float = 0.0
    wait_credit: float = 0.0
    #: batches received but not yet completed (queued + processing), now and at most
    held: int = 0
    held_max: int = 0
    redelivered_in: int = 0
    #: per upstream stage: records completed and records dead-lettered
    in_by_stage: dict[str, int] = field(default_factory=dict)
    dead_by_stage: dict[str, int] = field(default_factory=dict)
    #: per downstream stage: the sender side of the edge
    edges: dict[str, dict[str, int]] = field(default_factory=dict)
    #: batches not yet delivered (queued or unacknowledged) now, per downstream stage
    inflight: dict[str, int] = field(default_factory=dict)
    incomplete: list[list[str]] = field(default_factory=list)
    #: ``Context.warn`` messages
    warnings: list[str] = field(default_factory=list)
    #: how far the replica is through its input (``Context.progress``)
    progress_done: float = 0.0
    progress_total: float = 0.0
    progress_unit: str = ""
    #: batches processed, by time taken: bucket k counts times below 2**k microseconds
    latency: list[int] = field(default_factory=lambda: [0] * LATENCY_BUCKETS)
    #: resident memory of the worker process, bytes
    rss: int = 0

    def to_wire(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class EdgeCounters:
    """The sender side of one edge, as one replica sees it."""

    batches_sent: int = 0
    records_sent: int = 0
    records_acked: int = 0
    records_dead: int = 0
    #: batches delivered again after their replica was lost
    redelivered: int = 0
    inflight_max: int = 0


#: edge counters that add up over replicas (``inflight_max`` takes the maximum)
EDGE_FIELDS = tuple(f.name for f in fields(EdgeCounters) if f.name != "inflight_max")


@dataclass
class StageTotals:
    name: str
    replicas: int = 0
    records_in: int = 0
    records_out: int = 0
    errors: int = 0
    records_dead: int = 0
    cpu: float = 0.0
    busy: float = 0.0
    wait_input: float = 0.0
    wait_credit: float = 0.0
    held_max: int = 0
    inflight: int = 0
    inflight_max: int = 0
    restarts: int = 0
    killed: int = 0
    #: the stage's replica counts, from the start through every rescale
    scaled: list[int] = field(default_factory=list)
    in_by_stage: dict[str, int] = field(default_factory=dict)
    dead_by_stage: dict[str, int] = field(default_factory=dict)
    edges: dict[str, dict[str, int]] = field(default_factory=dict)
    incomplete: list[list[str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    progress_done: float = 0.0
    progress_total: float = 0.0
    progress_unit: str = ""
    latency: list[int] = field(default_factory=lambda: [0] * LATENCY_BUCKETS)


def _add(into: dict[str, int], more: Mapping[str, int]) -> None:
    for k, v in more.items():
        into[k] = into.get(k, 0) + v


def totals(name: str, reports: Iterable[Mapping[str, Any]]) -> StageTotals:
    """Sum the last counters of every replica (incarnation) of one stage."""
    t = StageTotals(name)
    for c in reports:
        t.replicas += 1
        t.records_in += c["records_in"]
        t.records_out += c["records_out"]
        t.errors += c["errors"]
        t.records_dead += c["records_dead"]
        t.cpu += c["cpu"]
        t.busy += c["busy"]
        t.wait_input += c["wait_input"]
        t.wait_credit += c["wait_credit"]
        t.held_max = max(t.held_max, c["held_max"])
        t.inflight += sum(c["inflight"].values())
        _add(t.in_by_stage, c["in_by_stage"])
        _add(t.dead_by_stage, c["dead_by_stage"])
        for target, e in c["edges"].items():
            edge = t.edges.setdefault(target, dict.fromkeys(EDGE_FIELDS, 0) | {"inflight_max": 0})
            for k in EDGE_FIELDS:
                edge[k] += e[k]
            edge["inflight_max"] = max(edge["inflight_max"], e["inflight_max"])
            t.inflight_max = max(t.inflight_max, e["inflight_max"])
        t.incomplete.extend(c["incomplete"])
        t.warnings.extend(c.get("warnings", ()))
        t.progress_done += c.get("progress_done", 0.0)
        t.progress_total += c.get("progress_total", 0.0)
        t.progress_unit = t.progress_unit or c.get("progress_unit", "")
        for b, n in enumerate(c.get("latency", ())[:LATENCY_BUCKETS]):
            t.latency[b] += n
    return t


def check_accounting(
    stages: Mapping[str, StageTotals], edges: Iterable[tuple[str, str]], exact: Mapping[str, bool]
) -> tuple[list[str], list[str]]:
    """Problems with the flow of records (empty when every record is accounted for), and
    notes on edges whose counts cannot be verified.

    For each edge A -> B: every record A sent must be acknowledged by B (processed, or
    written to the dead-letter file), and B must have counted the same records from A. A
    replica killed outright cannot report its final counts, so the checks that need them
    are skipped for its stage (the protocol still redelivered what it held).
    """
    problems: list[str] = []
    notes: list[str] = []
    for a, b in edges:
        if not exact.get(a, True):
            notes.append(f"{a} -> {b}: not verified, a replica of {a} was killed")
            continue
        sent = stages[a].edges.get(b, {})
        n_sent = sent.get("records_sent", 0)
        n_acked = sent.get("records_acked", 0)
        n_dead = sent.get("records_dead", 0)
        if n_sent != n_acked + n_dead:
            problems.append(
                f"{a} -> {b}: {n_sent} records sent but {n_acked + n_dead} confirmed "
                f"({n_acked} processed, {n_dead} dead-lettered): "
                f"{n_sent - n_acked - n_dead} records lost in flight"
            )
        if not exact.get(b, True):
            notes.append(f"{a} -> {b}: {b}'s side not verified, a replica of {b} was killed")
        else:
            got = stages[b].in_by_stage.get(a, 0)
            dead = stages[b].dead_by_stage.get(a, 0)
            if got != n_acked or dead != n_dead:
                problems.append(
                    f"{a} -> {b}: {a} had {n_acked} records processed and {n_dead} "
                    f"dead-lettered by {b}, but {b} counted {got} and {dead}"
                )
    return problems, notes


def rate(n: float, seconds: float) -> str:
    if seconds <= 0:
        return "-"
    r = n / seconds
    for unit, scale in (("M", 1e6), ("k", 1e3)):
        if r >= scale:
            return f"{r / scale:.1f}{unit}/s"
    return f"{r:.0f}/s"
