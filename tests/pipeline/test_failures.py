"""Crashes under each on_error policy, signals, and cleaning up after a killed frame."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from pipeline import deadletter
from pipeline.errors import ExitCode
from tests.conftest import assert_clean, pipeline_processes, run_topology, start_cli
from tests.stagelib import read_collected

pytestmark = pytest.mark.integration


def graph(out: Path, mid: str, params: str, policy: str, n: int = 100, extra: str = "") -> str:
    return f"""
        name: failing
        stages:
          - name: src
            run: tests.stagelib:count_to
            params: {{n: {n}}}
            batch: {{size: 10}}
            next: mid
          - name: mid
            run: {mid}
            params: {params}
            on_error: {policy}
            replicas: 2
            next: sink
{extra}
          - name: sink
            run: tests.stagelib:Collect
            params: {{folder: "{out}"}}
        """


def test_fail_stops_the_run_naming_stage_replica_and_line(run_dir: Path, tmp_path: Path) -> None:
    report = run_topology(graph(tmp_path, "tests.stagelib:fail_on", "{value: 13}", "fail"), run_dir)
    assert report.exit_code == ExitCode.FAILED
    (error,) = report.errors
    assert "stage 'mid' replica" in error
    assert "ValueError: item 13 is bad" in error
    assert "tests.stagelib:fail_on" in error and "stagelib.py:" in error
    assert "on_error: fail stops the run" in error


def test_skip_writes_the_failing_batch_to_dead_letters_and_goes_on(
    run_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    report = run_topology(graph(out, "tests.stagelib:fail_on", "{value: 13}", "skip"), run_dir)
    assert report.exit_code == ExitCode.OK, report.errors
    got = sorted(r["i"] for r in read_collected(out))
    assert got == [i for i in range(100) if not 10 <= i < 20]  # the batch holding 13 is out
    (path,) = report.dead_letters
    (entry,) = deadletter.read(path)
    assert entry["stage"] == "mid" and entry["from"] == "src/0" and entry["records"] == 10
    assert "ValueError: item 13 is bad" in entry["error"] and "Traceback" in entry["traceback"]
    assert [item["i"] for item in entry["items"]] == list(range(10, 20))
    assert report.stages["mid"].records_dead == 10
    assert report.stages["src"].edges["mid"]["records_dead"] == 10


def test_restart_delivers_the_batch_in_flight_again(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    marker = tmp_path / "marker"
    report = run_topology(
        graph(out, "tests.stagelib:fail_once", f'{{value: 42, marker: "{marker}"}}', "restart"),
        run_dir,
    )
    assert report.exit_code == ExitCode.OK, report.errors
    assert marker.exists()
    assert sorted(r["i"] for r in read_collected(out)) == list(range(100))  # once each
    assert report.stages["mid"].restarts == 1
    assert not report.dead_letters


def test_restart_dead_letters_a_batch_that_fails_again(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    report = run_topology(graph(out, "tests.stagelib:fail_on", "{value: 42}", "restart"), run_dir)
    assert report.exit_code == ExitCode.OK, report.errors
    assert sorted(r["i"] for r in read_collected(out)) == [
        i for i in range(100) if not 40 <= i < 50
    ]
    (path,) = report.dead_letters
    (entry,) = deadletter.read(path)
    assert entry["attempt"] == 1 and [x["i"] for x in entry["items"]] == list(range(40, 50))
    assert report.stages["mid"].restarts == 1


def test_a_killed_replica_is_restarted_and_loses_nothing(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    marker = tmp_path / "marker"
    report = run_topology(
        graph(out, "tests.stagelib:die_once", f'{{value: 42, marker: "{marker}"}}', "restart"),
        run_dir,
    )
    assert report.exit_code == ExitCode.OK, report.errors
    got = Counter(r["i"] for r in read_collected(out))
    assert set(got) == set(range(100))  # at least once; a kill may repeat a batch
    assert report.stages["mid"].killed == 1 and report.stages["mid"].restarts == 1


def test_a_killed_replica_under_fail_stops_the_run(run_dir: Path, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    t0 = time.monotonic()
    report = run_topology(
        graph(tmp_path, "tests.stagelib:die_once", f'{{value: 42, marker: "{marker}"}}', "fail"),
        run_dir,
    )
    assert time.monotonic() - t0 < 20  # never hangs
    assert report.exit_code == ExitCode.FAILED
    assert any("died (signal SIGKILL)" in e for e in report.errors)


def test_a_batch_that_kills_its_replica_twice_is_dead_lettered(
    run_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    report = run_topology(
        graph(out, "tests.stagelib:always_die", "{value: 42}", "restart"), run_dir
    )
    assert report.exit_code == ExitCode.OK, report.errors
    got = Counter(r["i"] for r in read_collected(out))
    assert set(got) == set(range(100)) - set(range(40, 50))
    (path,) = report.dead_letters
    (entry,) = deadletter.read(path)
    assert entry["stage"] == "mid" and entry["from"] == "src/0" and entry["attempt"] == 1
    assert "died while processing this batch" in entry["error"]
    assert [x["i"] for x in entry["items"]] == list(range(40, 50))
    assert report.stages["mid"].killed == 2
    assert report.stages["src"].edges["mid"]["records_dead"] == 10


def test_restarts_are_capped(run_dir: Path, tmp_path: Path) -> None:
    text = graph(tmp_path, "tests.stagelib:always_die", "{value: 42}", "restart")
    text = text.replace("on_error: restart", "on_error: restart\n            max_restarts: 1")
    report = run_topology(text, run_dir)
    assert report.exit_code == ExitCode.FAILED
    assert any("max_restarts 1" in e for e in report.errors)


def test_a_failing_source_under_skip_ends_early_and_exits_3(run_dir: Path, tmp_path: Path) -> None:
    report = run_topology(
        f"""
        name: badsource
        stages:
          - name: src
            run: tests.stagelib:fail_on
            on_error: skip
            next: sink
          - name: sink
            run: tests.stagelib:Collect
            params: {{folder: "{tmp_path}"}}
        """.replace("tests.stagelib:fail_on", "tests.stagelib:exploding_source"),
        run_dir,
    )
    assert report.exit_code == ExitCode.INCOMPLETE_INPUT
    assert sorted(r["i"] for r in read_collected(tmp_path)) == list(range(5))
    (what, reason) = report.incomplete[0]
    assert what == "src" and "RuntimeError: disk on fire" in reason


def _start_cli(topology: Path, cwd: Path) -> subprocess.Popen[str]:
    return start_cli("run", str(topology), cwd=cwd)


def _wait_for(predicate, timeout: float = 20) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


UNBOUNDED = """
name: {name}
run_dir: {run_dir}
drain_timeout: {drain}
stages:
  - name: src
    run: tests.stagelib:ticking
    params: {{every: 0.002}}
    next: mid
  - name: mid
    run: tests.stagelib:{mid}
    replicas: 2
    next: sink
  - name: sink
    run: tests.stagelib:Collect
    params: {{folder: "{out}"}}
"""


def test_sigterm_drains_an_unbounded_run_and_exits_0(run_dir: Path, tmp_path: Path) -> None:
    topo = tmp_path / "t.yaml"
    out = tmp_path / "out"
    topo.write_text(
        UNBOUNDED.format(name="drainme", run_dir=run_dir, drain=30, mid="double", out=out)
    )
    proc = _start_cli(topo, tmp_path)
    _wait_for(lambda: len(pipeline_processes("drainme", proc.pid)) == 4)
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "SIGTERM received: draining" in err
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["stopped_by"] == "SIGTERM"
    sent = summary["stages"]["src"]["records_out"]
    assert sent > 10
    assert len(read_collected(out)) == sent  # everything emitted arrived
    assert not pipeline_processes("drainme", proc.pid)
    assert_clean(run_dir)


def test_a_second_signal_stops_at_once(run_dir: Path, tmp_path: Path) -> None:
    topo = tmp_path / "t.yaml"
    topo.write_text(
        UNBOUNDED.format(name="stubborn", run_dir=run_dir, drain=60, mid="hold", out=tmp_path)
    )
    proc = _start_cli(topo, tmp_path)
    _wait_for(lambda: len(pipeline_processes("stubborn", proc.pid)) == 4)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.5)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=20)
    assert time.monotonic() - t0 < 10
    assert proc.returncode == ExitCode.FAILED
    assert "SIGINT received again: stopped at once" in err
    assert not pipeline_processes("stubborn", proc.pid)
    assert_clean(run_dir)


def test_the_next_start_cleans_up_after_a_killed_supervisor(run_dir: Path, tmp_path: Path) -> None:
    topo = tmp_path / "t.yaml"
    topo.write_text(
        UNBOUNDED.format(name="orphan", run_dir=run_dir, drain=5, mid="double", out=tmp_path)
    )
    proc = _start_cli(topo, tmp_path)
    _wait_for(lambda: len(pipeline_processes("orphan", proc.pid)) == 4)
    sockets = json.loads((run_dir / "frame.json").read_text())["sockets"]
    proc.kill()
    proc.communicate(timeout=10)
    _wait_for(
        lambda: not pipeline_processes("orphan", proc.pid), timeout=10
    )  # replicas die with it
    assert Path(sockets).exists()  # a SIGKILL leaves the sockets
    bounded = topo.read_text().replace("tests.stagelib:ticking", "tests.stagelib:count_to")
    topo.write_text(bounded.replace("{every: 0.002}", "{n: 50}"))
    again = _start_cli(topo, tmp_path)
    _, err = again.communicate(timeout=60)
    assert again.returncode == 0, err
    assert not Path(sockets).exists() or not any(Path(sockets).iterdir())
    assert_clean(run_dir)


def test_a_second_frame_on_the_same_run_dir_is_refused(run_dir: Path, tmp_path: Path) -> None:
    topo = tmp_path / "t.yaml"
    topo.write_text(
        UNBOUNDED.format(name="first", run_dir=run_dir, drain=5, mid="double", out=tmp_path)
    )
    proc = _start_cli(topo, tmp_path)
    try:
        _wait_for(lambda: len(pipeline_processes("first", proc.pid)) == 4)
        second = _start_cli(topo, tmp_path)
        _, err = second.communicate(timeout=30)
        assert second.returncode == ExitCode.USAGE
        assert f"another frame (pid {proc.pid}) is running in {run_dir}" in err
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    assert proc.returncode == 0


def _unsendable(out: Path, mid: str, policy: str) -> str:
    return f"""
        name: unsendable
        stages:
          - name: src
            run: tests.stagelib:count_to
            params: {{n: 100}}
            batch: {{size: 10}}
            next: mid
          - name: mid
            run: {mid}
            params: {{value: 13}}
            on_error: {policy}
            next: sink
          - name: sink
            run: tests.stagelib:Collect
            params: {{folder: "{out}"}}
            route: {{key: k}}
            replicas: 2
        """


def test_an_output_the_wire_cannot_carry_is_charged_to_its_batch(
    run_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    text = _unsendable(out, "tests.stagelib:opaque_on", "skip").replace("route: {key: k}", "")
    report = run_topology(text, run_dir)
    assert report.exit_code == ExitCode.OK, report.errors
    assert sorted(r["i"] for r in read_collected(out)) == [
        i for i in range(100) if not 10 <= i < 20
    ]
    (path,) = report.dead_letters
    (entry,) = deadletter.read(path)
    assert (
        "its output for sink cannot be sent" in entry["error"]
        and "cannot send a builtins.object" in entry["error"]
    )
    assert [x["i"] for x in entry["items"]] == list(range(10, 20))  # the input batch, kept whole


def test_a_record_without_its_routing_key_fails_the_stage_that_made_it(
    run_dir: Path, tmp_path: Path
) -> None:
    report = run_topology(_unsendable(tmp_path, "tests.stagelib:drop_key_on", "fail"), run_dir)
    assert report.exit_code == ExitCode.FAILED
    (error,) = report.errors
    assert "stage 'mid' replica 0 raised KeyRouteError" in error
    assert "cannot route by key 'k'" in error and "on batch 2 from src/0" in error
    report = run_topology(
        _unsendable(tmp_path / "o", "tests.stagelib:drop_key_on", "skip"), run_dir
    )
    assert report.exit_code == ExitCode.OK, report.errors
    assert len(read_collected(tmp_path / "o")) == 90


def test_sigterm_to_the_whole_process_group_drains(run_dir: Path, tmp_path: Path) -> None:
    topo = tmp_path / "t.yaml"
    out = tmp_path / "out"
    topo.write_text(
        UNBOUNDED.format(name="group", run_dir=run_dir, drain=30, mid="double", out=out)
    )
    proc = start_cli("run", str(topo), cwd=tmp_path)
    _wait_for(lambda: len(pipeline_processes("group", proc.pid)) == 4)
    time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGTERM)  # as a batch scheduler or `kill -- -PGID` would
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    summary = json.loads((run_dir / "summary.json").read_text())
    assert len(read_collected(out)) == summary["stages"]["src"]["records_out"] > 0
    assert not pipeline_processes("group", proc.pid)


def test_an_async_replica_that_fails_is_restarted_in_its_worker(
    run_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    marker = tmp_path / "marker"
    text = graph(out, "tests.stagelib:fail_once", f'{{value: 42, marker: "{marker}"}}', "restart")
    text = text.replace("on_error: restart", "on_error: restart\n            kind: async")
    report = run_topology(text, run_dir)
    assert report.exit_code == ExitCode.OK, report.errors
    assert sorted(r["i"] for r in read_collected(out)) == list(range(100))
    assert report.stages["mid"].restarts == 1 and report.stages["mid"].killed == 0
