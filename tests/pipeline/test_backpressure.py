"""A slow stage slows its sources: in-flight batches stay within the window and credit."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_topology
from tests.stagelib import read_collected

pytestmark = pytest.mark.integration


def test_inflight_never_exceeds_the_window(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    report = run_topology(
        f"""
        name: window
        stages:
          - name: src
            run: tests.stagelib:count_to
            params: {{n: 3000}}
            batch: {{size: 10}}
            backpressure: {{window: 4}}
            next: sink
          - name: sink
            run: tests.stagelib:slow
            params: {{seconds: 0.0005}}
            replicas: 2
            backpressure: {{credit: 8}}
            next: keep
          - name: keep
            run: tests.stagelib:Collect
            params: {{folder: "{out}"}}
        """,
        run_dir,
    )
    assert report.ok, report.errors
    edge = report.stages["src"].edges["sink"]
    assert edge["inflight_max"] == 4  # the window was reached and never exceeded
    assert report.stages["src"].wait_credit > 0.5  # the source waited for the slow stage
    assert report.stages["sink"].held_max <= 4
    assert len(read_collected(out)) == 3000


def test_a_sleeping_replica_never_holds_more_than_its_credit(run_dir: Path, tmp_path: Path) -> None:
    report = run_topology(
        f"""
        name: credit
        stages:
          - name: src
            run: tests.stagelib:count_to
            params: {{n: 6}}
            batch: {{size: 1}}
            next: sleepy
          - name: sleepy
            run: tests.stagelib:hold
            params: {{seconds: 1.0}}
            replicas: 2
            backpressure: {{credit: 2}}
            next: keep
          - name: keep
            run: tests.stagelib:Collect
            params: {{folder: "{tmp_path}"}}
        """,
        run_dir,
    )
    assert report.ok, report.errors
    assert report.stages["sleepy"].held_max == 2  # reached its credit, never more
    assert report.stages["src"].edges["sleepy"]["inflight_max"] <= 4
    assert len(read_collected(tmp_path)) == 6


def test_a_sender_with_a_small_window_is_not_starved_by_a_busy_one(
    run_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    report = run_topology(
        f"""
        name: starve
        stages:
          - name: busy
            run: tests.stagelib:tagged
            params: {{n: 3000, tag: B}}
            batch: {{size: 10}}
            next: keep
          - name: small
            run: tests.stagelib:tagged
            params: {{n: 100, tag: S}}
            batch: {{size: 10}}
            backpressure: {{window: 2}}
            next: keep
          - name: keep
            run: tests.stagelib:Collect
            params: {{folder: "{out}", seconds: 0.0005}}
        """,
        run_dir,
    )
    assert report.ok, report.errors
    order = [r["tag"] for r in read_collected(out)]
    last_small = max(i for i, tag in enumerate(order) if tag == "S")
    assert last_small < 0.6 * len(order), f"the small sender finished at {last_small}/{len(order)}"
