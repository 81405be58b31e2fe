"""The accounting check catches records lost or miscounted between stages."""

from __future__ import annotations

from typing import Any

from pipeline.stats import ReplicaCounters, check_accounting, totals


def counters(**kw: Any) -> dict[str, Any]:
    c = ReplicaCounters(**kw)
    return c.to_wire()


def edge(sent: int, acked: int, dead: int = 0) -> dict[str, int]:
    return {
        "batches_sent": 1,
        "records_sent": sent,
        "records_acked": acked,
        "records_dead": dead,
        "redelivered": 0,
        "inflight_max": 1,
    }


def test_totals_sum_replicas() -> None:
    t = totals(
        "mid",
        [
            counters(records_in=5, in_by_stage={"a": 5}, edges={"b": edge(5, 5)}),
            counters(records_in=7, in_by_stage={"a": 7}, edges={"b": edge(7, 6, 1)}),
        ],
    )
    assert t.replicas == 2 and t.records_in == 12 and t.in_by_stage == {"a": 12}
    assert t.edges["b"]["records_sent"] == 12 and t.edges["b"]["records_dead"] == 1


def test_balanced_edges_pass() -> None:
    stages = {
        "a": totals("a", [counters(edges={"b": edge(10, 8, 2)})]),
        "b": totals("b", [counters(in_by_stage={"a": 8}, dead_by_stage={"a": 2})]),
    }
    assert check_accounting(stages, [("a", "b")], {}) == ([], [])


def test_records_sent_but_never_confirmed_are_lost() -> None:
    stages = {
        "a": totals("a", [counters(edges={"b": edge(10, 7)})]),
        "b": totals("b", [counters(in_by_stage={"a": 7})]),
    }
    problems, _ = check_accounting(stages, [("a", "b")], {})
    assert problems == [
        "a -> b: 10 records sent but 7 confirmed (7 processed, 0 dead-lettered): "
        "3 records lost in flight"
    ]


def test_receiver_counts_must_match_the_sender_s() -> None:
    stages = {
        "a": totals("a", [counters(edges={"b": edge(10, 10)})]),
        "b": totals("b", [counters(in_by_stage={"a": 9})]),
    }
    problems, _ = check_accounting(stages, [("a", "b")], {})
    assert problems == [
        "a -> b: a had 10 records processed and 0 dead-lettered by b, but b counted 9 and 0"
    ]


def test_a_killed_replica_makes_its_side_unverifiable_not_wrong() -> None:
    stages = {
        "a": totals("a", [counters(edges={"b": edge(10, 10)})]),
        "b": totals("b", [counters(in_by_stage={"a": 4})]),  # last report before the kill
    }
    problems, notes = check_accounting(stages, [("a", "b")], {"b": False})
    assert problems == [] and notes == ["a -> b: b's side not verified, a replica of b was killed"]
    problems, notes = check_accounting(stages, [("a", "b")], {"a": False})
    assert problems == [] and notes == ["a -> b: not verified, a replica of a was killed"]
