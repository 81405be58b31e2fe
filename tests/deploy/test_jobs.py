"""The batch job scripts in deploy/: valid bash that shellcheck passes, and, run as the
scheduler would run them (outside one: they are bash scripts whose directives are
comments), a topology to its end with the replicas the allocation gives, passing the
scheduler's SIGTERM on so the run drains."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.servers import binary
from tests.stages.wrstat.conftest import generate

pytestmark = pytest.mark.integration

SCRIPTS = sorted(p for p in (REPO / "deploy").rglob("*")
                 if p.suffix in (".sh", ".sbatch", ".bsub"))  # fmt: skip
JOBS = {"slurm": (REPO / "deploy/slurm/pipeline-run.sbatch", "SLURM_CPUS_PER_TASK"),
        "lsf": (REPO / "deploy/lsf/pipeline-run.bsub", "LSB_DJOB_NUMPROC")}  # fmt: skip


def test_there_are_job_scripts() -> None:
    assert {p.name for p in SCRIPTS} >= {"pipeline-run.sbatch", "pipeline-run.bsub"}


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_a_job_script_is_valid_bash_and_passes_shellcheck(script: Path) -> None:
    syntax = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True,
                            check=False)  # fmt: skip
    assert syntax.returncode == 0, syntax.stderr
    lint = subprocess.run([binary("shellcheck", "shellcheck"), "--shell=bash", str(script)],
                          capture_output=True, text=True, check=False)  # fmt: skip
    assert lint.returncode == 0, lint.stdout


def _env(tmp_path: Path, **more: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "INGRESS_URL": "off",
            "PIPELINE_BIN": str(Path(sys.executable).parent / "pipeline"), **more}  # fmt: skip


@pytest.mark.parametrize("scheduler", sorted(JOBS))
def test_a_job_runs_the_topology_with_the_cpus_it_was_given(tmp_path: Path, scheduler: str) -> None:
    script, cpus = JOBS[scheduler]
    generate(tmp_path / "in", 600, "scratch117=v3", date="20261101")
    topology = tmp_path / "wrstat.yaml"
    shutil.copy(REPO / "topology.yaml", topology)
    env = _env(tmp_path, WRSTAT_DIR=str(tmp_path / "in"), REPORT_DIR=str(tmp_path / "out"),
               **{cpus: "4"})  # fmt: skip
    ran = subprocess.run(["bash", str(script), str(topology)], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    assert f"{topology} ended with exit code 0" in ran.stderr
    assert (tmp_path / "out" / "group-20261101.tsv").exists()
    summary = json.loads((tmp_path / ".pipeline" / "wrstat" / "summary.json").read_text())
    assert summary["stages"]["usage"]["replicas"] == 3  # 4 CPUs: one for the rest


def test_a_missing_topology_is_exit_2_saying_so(tmp_path: Path) -> None:
    script, _ = JOBS["slurm"]
    missing = str(tmp_path / "none.yaml")
    ran = subprocess.run(["bash", str(script), missing], cwd=tmp_path, env=_env(tmp_path),
                         capture_output=True, text=True, check=False)  # fmt: skip
    assert ran.returncode == 2 and "no topology at" in ran.stderr


SLOW = """\
name: slowjob
drain_timeout: 20
stages:
  - name: src
    run: tests.stagelib:count_to
    params: {n: 40}
    batch: {size: 1}
    next: hold
  - name: hold
    run: tests.stagelib:hold
    params: {seconds: 0.2}
    backpressure: {credit: 1}
"""


def test_the_schedulers_sigterm_makes_the_run_drain_and_end(tmp_path: Path) -> None:
    topology = tmp_path / "slow.yaml"
    topology.write_text(SLOW)
    script, _ = JOBS["slurm"]
    job = subprocess.Popen(["bash", str(script), str(topology)], cwd=tmp_path,
                           env=_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, start_new_session=True)  # fmt: skip
    running = tmp_path / ".pipeline" / "slowjob" / "frame.json"
    deadline = time.monotonic() + 60
    while not running.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1.5)  # running: a few items held
    job.send_signal(signal.SIGTERM)  # as Slurm signals the batch shell
    _, err = job.communicate(timeout=60)
    summary = json.loads((tmp_path / ".pipeline" / "slowjob" / "summary.json").read_text())
    assert "SIGTERM received: draining" in err, err
    assert f"ended with exit code {job.returncode}" in err
    assert summary["stages"]["src"]["records_out"] < 40  # stopped early, not run to its end
    held = summary["stages"]["hold"]
    assert held["records_in"] == summary["stages"]["src"]["records_out"]  # drained: none lost
