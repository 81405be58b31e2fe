"""The MASS multistaged-analysis API on this engine."""

from __future__ import annotations

import os
import runpy
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from pipeline import AnalysisFrame, RunFailed, TopologyError
from pipeline.errors import ExitCode
from tests.conftest import REPO, assert_clean
from tests.stagelib import Collect, mass_async_plus, mass_double, mass_numbers, read_collected

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("mode", ["process", "async"])
def test_the_mass_example_script_runs_nearly_verbatim(tmp_path: Path, mode: str) -> None:
    out = tmp_path / "report.tsv"
    script = REPO / "examples" / "mass_example.py"
    domains = runpy.run_path(str(script), run_name="example")["DOMAINS"]
    proc = subprocess.run(
        [sys.executable, str(script), str(out), mode],
        check=False,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    rows = [line.split("\t") for line in out.read_text().splitlines()]
    assert Counter((d, int(n)) for d, n in rows) == Counter((d, len(d)) for d in domains)


def test_mass_stages_mixed_with_contract_stages(run_dir: Path, tmp_path: Path) -> None:
    frame = AnalysisFrame("massmix", run_dir=run_dir)
    frame.add_stage(mass_numbers, "numbers", next_stage="double", params={"count": 500})
    frame.add_stage(mass_double, "double", next_stage="plus", replicas=2)
    frame.add_stage(mass_async_plus, "plus", next_stage="sink", replicas=3, concurrency="async")
    frame.add_stage(Collect, "sink", params={"folder": str(tmp_path)})
    report = frame.start_all_stages()
    assert report.ok
    assert sorted(r["i"] for r in read_collected(tmp_path)) == [2 * i + 1 for i in range(500)]
    assert_clean(run_dir)


def test_from_yaml_builds_the_same_graph(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(
        "name: same\nstages:\n"
        "  - {name: numbers, run: tests.stagelib:mass_numbers, next: double}\n"
        "  - {name: double, run: tests.stagelib:mass_double, replicas: 2}\n"
    )
    by_yaml = AnalysisFrame.from_yaml(path).topology
    frame = AnalysisFrame("same")
    frame.add_stage(mass_numbers, "numbers", next_stage="double")
    frame.add_stage(mass_double, "double", replicas=2)
    assert by_yaml.stages == frame.topology.stages


def test_a_lambda_cannot_be_a_stage() -> None:
    frame = AnalysisFrame()
    with pytest.raises(TopologyError, match="must be a module-level function or class"):
        frame.add_stage(lambda sockets: None, "anon")


def test_start_all_stages_raises_when_the_run_fails(run_dir: Path, tmp_path: Path) -> None:
    frame = AnalysisFrame("massfail", run_dir=run_dir)
    frame.add_stage("tests.stagelib:count_to", "src", next_stage="bad", params={"n": 50})
    frame.add_stage("tests.stagelib:fail_on", "bad", params={"value": 7})
    with pytest.raises(RunFailed, match="item 7 is bad") as info:
        frame.start_all_stages()
    assert info.value.report.exit_code == ExitCode.FAILED  # type: ignore[attr-defined]


@pytest.mark.parametrize("concurrency", ["process", "async"])
def test_a_fed_stage_that_ends_its_stream_early_lets_the_run_finish(
    run_dir: Path, tmp_path: Path, concurrency: str
) -> None:
    frame = AnalysisFrame("takethree", run_dir=run_dir)
    frame.add_stage("tests.stagelib:count_to", "src", next_stage="take", params={"n": 5000})
    take = "tests.stagelib:mass_take_three"
    if concurrency == "async":
        take = "tests.stagelib:mass_async_take_three"
    frame.add_stage(take, "take", next_stage="sink", concurrency=concurrency)
    frame.add_stage(Collect, "sink", params={"folder": str(tmp_path)})
    report = frame.start_all_stages()
    assert report.ok
    assert [r["i"] for r in read_collected(tmp_path)] == [0, 1, 2]
    assert report.stages["take"].records_in == 5000  # the rest was taken, not processed
