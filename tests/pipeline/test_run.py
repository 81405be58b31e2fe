"""Real multi-process graphs: replicas, async stages, fan-out, routing, end of stream."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from pipeline.errors import ExitCode
from tests.conftest import run_topology
from tests.stagelib import read_collected

pytestmark = pytest.mark.integration


def test_a_linear_graph_delivers_every_record_once(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    report = run_topology(
        f"""
        name: linear
        stages:
          - name: src
            run: tests.stagelib:count_to
            params: {{n: 5000}}
            replicas: 3
            next: mid
          - name: mid
            run: tests.stagelib:double
            replicas: 2
            next: sink
          - name: sink
            run: tests.stagelib:Collect
            params: {{folder: "{out}"}}
            replicas: 2
        """,
        run_dir,
    )
    assert report.exit_code == ExitCode.OK, report.errors
    got = sorted(r["i"] for r in read_collected(out))
    assert got == [2 * i for i in range(5000)]
    assert report.stages["src"].records_out == 5000
    assert report.stages["mid"].records_in == 5000
    assert report.stages["sink"].records_in == 5000
    assert report.stages["src"].edges["mid"]["records_acked"] == 5000
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["exit_code"] == 0 and summary["stages"]["sink"]["records_in"] == 5000


def test_mixed_process_and_async_stages(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    report = run_topology(
        f"""
        name: mixed
        stages:
          - name: src
            run: tests.stagelib:count_to
            params: {{n: 20000}}  # enough batches that both tag replicas get some
            batch: {{size: 100}}
            next: plus
          - name: plus
            run: tests.stagelib:add_one
            kind: async
            replicas: 4
            batch: {{size: 100}}
            next: tag
          - name: tag
            run: tests.stagelib:tag_replica
            kind: async
            replicas: 2
            next: sink
          - name: sink
            run: tests.stagelib:Collect
            params: {{folder: "{out}"}}
        """,
        run_dir,
    )
    assert report.ok, report.errors
    rows = read_collected(out)
    assert sorted(r["i"] for r in rows) == list(range(1, 20001))
    assert {r["replica"] for r in rows} == {0, 1}
    assert len({r["pid"] for r in rows}) == 1  # async replicas share one worker process


def test_fan_out_gives_every_listed_stage_every_record(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    report = run_topology(
        f"""
        name: fanout
        stages:
          - name: src
            run: tests.stagelib:count_to
            params: {{n: 1000}}
            next: [a, b]
          - name: a
            run: tests.stagelib:double
            replicas: 2
            next: sink
          - name: b
            run: tests.stagelib:keep_even
            next: sink
          - name: sink
            run: tests.stagelib:Collect
            params: {{folder: "{out}"}}
        """,
        run_dir,
    )
    assert report.ok, report.errors
    got = Counter(r["i"] for r in read_collected(out))
    expected = Counter([2 * i for i in range(1000)] + [i for i in range(1000) if i % 2 == 0])
    assert got == expected
    assert report.stages["sink"].in_by_stage == {"a": 1000, "b": 500}


def test_key_routing_sends_each_key_to_one_replica(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    report = run_topology(
        f"""
        name: keyed
        stages:
          - name: src
            run: tests.stagelib:count_to
            params: {{n: 20000, keys: 37}}
            replicas: 2
            next: total
          - name: total
            run: tests.stagelib:Total
            route: {{key: k}}
            replicas: 3
            next: sink
          - name: sink
            run: tests.stagelib:Collect
            params: {{folder: "{out}"}}
        """,
        run_dir,
    )
    assert report.ok, report.errors
    rows = read_collected(out)
    assert sorted(r["k"] for r in rows) == list(range(37))  # one row per key: never split
    for r in rows:
        mine = [i for i in range(20000) if i % 37 == r["k"]]
        assert (r["sum"], r["n"]) == (sum(mine), len(mine))  # none lost, none twice
    assert len({r["replica"] for r in rows}) == 3


def test_broadcast_gives_every_replica_everything(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    report = run_topology(
        f"""
        name: bcast
        stages:
          - name: src
            run: tests.stagelib:count_to
            params: {{n: 300}}
            next: sink
          - name: sink
            run: tests.stagelib:Collect
            params: {{folder: "{out}", tag: true}}
            route: broadcast
            replicas: 3
        """,
        run_dir,
    )
    assert report.ok, report.errors
    rows = read_collected(out)
    for replica in range(3):
        assert sorted(r["i"] for r in rows if r["at"] == replica) == list(range(300))


def test_numpy_arrays_and_columns_flow_and_route_by_column(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    report = run_topology(
        f"""
        name: columnar
        stages:
          - name: arrays
            run: tests.stagelib:arrays
            params: {{n: 20, size: 50000}}
            next: sink
          - name: cols
            run: tests.stagelib:columns
            params: {{batches: 10, rows: 1000, keys: 7}}
            next: tag
          - name: tag
            run: tests.stagelib:tag_replica
            route: {{key: k}}
            replicas: 3
            next: sink
          - name: sink
            run: tests.stagelib:Collect
            params: {{folder: "{out}"}}
        """,
        run_dir,
    )
    assert report.ok, report.errors
    rows = read_collected(out)
    arrays = [r["array"] for r in rows if "array" in r]
    assert sorted(a[0] for a in arrays) == list(range(20)) and all(len(a) == 50000 for a in arrays)
    cols = [r["columns"] for r in rows if "columns" in r]
    seen: dict[int, set[int]] = {}
    all_i = []
    for c in cols:
        all_i.extend(c["i"])
        for k, rep in zip(c["k"], c["replica"], strict=True):
            seen.setdefault(k, set()).add(rep)
    assert sorted(all_i) == list(range(10000))
    assert all(len(reps) == 1 for reps in seen.values())  # each key on one replica
    assert report.stages["tag"].records_in == 10000  # Columns count as their rows


def test_tcp_transport(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    report = run_topology(
        f"""
        name: overtcp
        transport: tcp
        stages:
          - name: src
            run: tests.stagelib:count_to
            params: {{n: 3000}}
            replicas: 2
            next: mid
          - name: mid
            run: tests.stagelib:double
            replicas: 2
            next: sink
          - name: sink
            run: tests.stagelib:Collect
            params: {{folder: "{out}"}}
        """,
        run_dir,
    )
    assert report.ok, report.errors
    assert sorted(r["i"] for r in read_collected(out)) == [2 * i for i in range(3000)]


def test_end_of_stream_waits_for_every_upstream_replica(run_dir: Path, tmp_path: Path) -> None:
    # uneven sources: one replica has far more to send than the others
    out = tmp_path / "out"
    report = run_topology(
        f"""
        name: uneven
        stages:
          - name: fast
            run: tests.stagelib:count_to
            params: {{n: 10, keys: 3}}
            next: sink
          - name: slow
            run: tests.stagelib:count_to
            params: {{n: 400, keys: 3}}
            batch: {{size: 20}}
            next: slowly
          - name: slowly
            run: tests.stagelib:slow
            params: {{seconds: 0.002}}
            replicas: 2
            next: sink
          - name: sink
            run: tests.stagelib:Total
            route: {{key: k}}
            replicas: 2
            next: collect
          - name: collect
            run: tests.stagelib:Collect
            params: {{folder: "{out}"}}
        """,
        run_dir,
    )
    assert report.ok, report.errors
    rows = read_collected(out)
    assert sum(r["n"] for r in rows) == 410


def test_warnings_reach_the_summary_and_leave_the_exit_code_alone(
    run_dir: Path, tmp_path: Path
) -> None:
    report = run_topology(
        """
        name: warned
        stages:
          - name: src
            run: tests.stagelib:count_to
            params: {n: 300, keys: 3}
            next: total
          - name: total
            run: tests.stagelib:WarnAtEnd
            route: {key: k}
            replicas: 2
        """,
        run_dir,
    )
    assert report.exit_code == ExitCode.OK, report.errors
    assert len(report.warnings) == 2
    seen = sorted(report.warnings)
    assert all(w.startswith("total: replica ") for w in seen), seen
    assert sum(int(w.split(" saw ")[1].split()[0]) for w in seen) == 300
    assert [line for line in report.lines() if line.startswith("warning: ")] == [
        f"warning: {w}" for w in report.warnings
    ]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["warnings"] == report.warnings and summary["exit_code"] == 0
