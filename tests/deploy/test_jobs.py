"""The batch job scripts in deploy/: valid bash that shellcheck passes, and, run as the
scheduler would run them (outside one: they are bash scripts whose directives are
comments), a topology to its end with the replicas the allocation gives, passing the
scheduler's SIGTERM on so the run drains. The multi-node scripts run with their workers'
"nodes" all on this machine, started by stand-ins for srun and blaunch (no scheduler is
installed here), and write the reports a single-host run writes."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline.topology import build_topology
from pipeline.yamlfile import load
from tests.brokers import free_port
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


NODES_TOPOLOGY = REPO / "examples" / "wrstat-nodes.yaml"


def test_the_nodes_topology_is_topology_yaml_with_usage_on_the_group() -> None:
    one = yaml.safe_load((REPO / "topology.yaml").read_text())
    nodes = yaml.safe_load(NODES_TOPOLOGY.read_text())
    assert nodes["groups"] == {"nodes": "${PIPELINE_MEMBERS:-1}"} and nodes["transport"] == "tcp"
    assert nodes["host"] == "${PIPELINE_ADDRESS}" and nodes["keys"] == "${PIPELINE_KEYS}"
    usage = next(stage for stage in nodes["stages"] if stage["name"] == "usage")
    assert usage.pop("hosts") == ["nodes"]
    assert nodes["stages"] == one["stages"]  # the same stages, names and parameters
    assert nodes["name"] == one["name"]  # the same frame: its run dir, its history


def test_the_nodes_topology_loads_with_what_the_job_scripts_set(tmp_path: Path) -> None:
    env = {"PIPELINE_ADDRESS": "10.0.0.1", "PIPELINE_KEYS": str(tmp_path / "keys"),
           "PIPELINE_MEMBERS": "2", "USAGE_REPLICAS": "16"}  # fmt: skip
    located = load(NODES_TOPOLOGY.read_text(), str(NODES_TOPOLOGY), env)
    topology = build_topology(located.data, located=located, origin=str(NODES_TOPOLOGY))
    assert topology.groups == {"nodes": 2} and topology.host == "10.0.0.1"
    assert topology.stage("usage").hosts == ("nodes",)
    assert topology.stage("usage").replicas == 16


# Stand-ins for the schedulers' launchers, put first on PATH: each records its options (in
# "calls" beside it) and runs the command on this machine, as a task on each node it was
# asked for would run it; each node a few seconds after the one before, as tasks on a
# cluster start when their node is ready (the run must wait for every member to spread).
SRUN = """\
#!/bin/bash
# srun inside an allocation: --nodes=N tasks, one a node, each with its rank in SLURM_PROCID
nodes=1
options=()
while [[ $1 == -* ]]; do
  case $1 in --nodes=*) nodes=${1#--nodes=} ;; esac
  options+=("$1")
  shift
done
echo "${options[*]}" >> "$(dirname "$0")/calls"
tasks=()
trap 'kill -TERM "${tasks[@]}" 2>/dev/null' TERM INT  # srun passes signals to its tasks
for (( rank = 0; rank < nodes; rank++ )); do
  (sleep $(( 3 * rank )); SLURM_PROCID=$rank SLURM_NODEID=$(( rank + 1 )) exec "$@") &
  tasks+=("$!")
done
status=0
for task in "${tasks[@]}"; do wait "$task" || status=$?; done
exit "$status"
"""
BLAUNCH = """\
#!/bin/bash
# blaunch -no-shell HOST COMMAND...: COMMAND, as it is, once on HOST
echo "$1 $2" >> "$(dirname "$0")/calls"
[[ $1 == -no-shell ]] || { echo "blaunch stand-in: expected -no-shell" >&2; exit 2; }
read -ra allocation <<< "$LSB_MCPU_HOSTS"  # host slots ..., the first host the job's
for (( i = 2; i < ${#allocation[@]}; i += 2 )); do
  [[ ${allocation[i]} == "$2" ]] && sleep $(( 3 * (i / 2 - 1) ))
done
shift 2
exec "$@"
"""
# three nodes of two CPUs each, as each scheduler describes them to a job
NODES = {
    "slurm": (REPO / "deploy/slurm/pipeline-nodes.sbatch", "srun", SRUN,
              {"SLURM_JOB_ID": "4242", "SLURM_NNODES": "3", "SLURM_JOB_NODELIST": "n[1-3]",
               "SLURM_CPUS_PER_TASK": "2", "SLURMD_NODENAME": "n1"}),
    "lsf": (REPO / "deploy/lsf/pipeline-nodes.bsub", "blaunch", BLAUNCH,
            {"LSB_JOBID": "4243", "LSB_HOSTS": "n1 n1 n2 n2 n3 n3",
             "LSB_MCPU_HOSTS": "n1 2 n2 2 n3 2", "LSB_DJOB_NUMPROC": "6"}),
}  # fmt: skip


def _stand_in(tmp_path: Path, scheduler: str) -> Path:
    _, name, text, _ = NODES[scheduler]
    folder = tmp_path / "bin"
    folder.mkdir()
    (folder / name).write_text(text)
    (folder / name).chmod(0o755)
    return folder


@pytest.mark.timeout(300)
@pytest.mark.parametrize("scheduler", sorted(NODES))
def test_a_multi_node_job_writes_the_reports_of_a_single_host_run(
    tmp_path: Path, scheduler: str
) -> None:
    script, _, _, allocation = NODES[scheduler]
    generate(tmp_path / "in", 1500, "scratch117=v3,scratch123=v6.2", date="20261101")
    inputs = {"WRSTAT_DIR": str(tmp_path / "in"), "INGRESS_URL": "off"}
    (tmp_path / "one").mkdir()
    alone = subprocess.run(
        [str(Path(sys.executable).parent / "pipeline"), "run", "--progress", "off",
         str(REPO / "topology.yaml")],
        cwd=tmp_path / "one", env=_env(tmp_path, **inputs, REPORT_DIR=str(tmp_path / "alone")),
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert alone.returncode == 0, alone.stderr
    launcher = _stand_in(tmp_path, scheduler)
    job = tmp_path / "job"
    job.mkdir()
    env = _env(tmp_path, **inputs, **allocation, REPORT_DIR=str(tmp_path / "nodes"),
               PIPELINE_PORT=str(free_port()), PATH=f"{launcher}:{os.environ['PATH']}")  # fmt: skip
    ran = subprocess.run(["bash", str(script), str(NODES_TOPOLOGY)], cwd=job, env=env,
                         capture_output=True, text=True, timeout=180, check=False)  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    assert f"{NODES_TOPOLOGY} ended with exit code 0" in ran.stderr
    names = sorted(p.name for p in (tmp_path / "alone").glob("*-20261101.tsv"))
    assert {"group-20261101.tsv", "user-20261101.tsv", "ages-20261101.tsv"} <= set(names)
    for name in names:
        same = (tmp_path / "nodes" / name).read_bytes() == (tmp_path / "alone" / name).read_bytes()
        assert same, name
    summary = json.loads((job / ".pipeline" / "wrstat" / "summary.json").read_text())
    assert summary["stages"]["usage"]["replicas"] == 4  # the other two nodes' CPUs
    calls = (launcher / "calls").read_text().splitlines()
    if scheduler == "slurm":  # one step of a task on each node but the batch node
        assert len(calls) == 1 and "--nodes=2" in calls[0] and "--relative=1" in calls[0]
    else:  # a task on each host but the first
        assert sorted(c.split()[1] for c in calls) == ["n2", "n3"]
    assert not list(job.glob("pipeline-keys-*"))  # the job's keys go with it
    # a member on each other node, named apart though all run on this one machine, and
    # the replicas spread over both (the run waited for both before starting them)
    short = socket.gethostname().split(".")[0]
    joined = re.findall(r"host (\S+) joined \(a member of group nodes", ran.stderr)
    assert sorted(joined) == [f"{short}-0", f"{short}-1"], ran.stderr
    started = Counter(re.findall(r"host (\S+): started usage\[", ran.stderr))
    assert started == {f"{short}-0": 2, f"{short}-1": 2}, ran.stderr
    # each reached at the address its node reaches the coordinator's at: never a loopback
    # one, though the host name here may resolve to one
    reached = re.findall(r"joining the frame at tcp://([^:]+):\d+ .*workers reached at ([^)]+)\)",
                         ran.stderr)  # fmt: skip
    assert len(reached) == 2 and all(c == w and not w.startswith("127.") for c, w in reached)


@pytest.mark.parametrize("scheduler", sorted(NODES))
def test_a_multi_node_job_given_one_node_is_exit_2_saying_so(
    tmp_path: Path, scheduler: str
) -> None:
    script, _, _, allocation = NODES[scheduler]
    one_node = {**allocation, "SLURM_NNODES": "1", "LSB_MCPU_HOSTS": "n1 2"}
    ran = subprocess.run(["bash", str(script), str(NODES_TOPOLOGY)], cwd=tmp_path,
                         env=_env(tmp_path, **one_node), capture_output=True, text=True,
                         timeout=30, check=False)  # fmt: skip
    assert ran.returncode == 2, ran.stderr
    assert "pipeline-run" in ran.stderr  # it says which script runs on one node
    assert not list(tmp_path.glob("pipeline-keys-*"))  # nothing was started


SLOW_NODES = """\
name: slownodes
transport: tcp
host: ${PIPELINE_ADDRESS}
port: ${PIPELINE_PORT}
keys: ${PIPELINE_KEYS}
groups:
  nodes: ${PIPELINE_MEMBERS}
drain_timeout: 20
stages:
  - name: src
    run: tests.stagelib:count_to
    params: {n: 60}
    batch: {size: 1}
    next: hold
  - name: hold
    run: tests.stagelib:hold
    params: {seconds: 0.2}
    replicas: 2
    hosts: [nodes]
    backpressure: {credit: 1}
"""
WORKERS_ENDED = {"slurm": "(the workers' step: exit code 0)", "lsf": "(0 of 2 workers failed)"}


def _signalled_multi_node_job(tmp_path: Path, scheduler: str,
                              whole_job: bool) -> tuple[str, int, dict[str, Any]]:  # fmt: skip
    """The slow multi-node job, sent SIGTERM once running (to the batch shell alone, or to
    every process of the job): its stderr, exit code and summary."""
    script, _, _, allocation = NODES[scheduler]
    topology = tmp_path / "slow.yaml"
    topology.write_text(SLOW_NODES)
    launcher = _stand_in(tmp_path, scheduler)
    env = _env(tmp_path, **allocation, PIPELINE_PORT=str(free_port()),
               PATH=f"{launcher}:{os.environ['PATH']}")  # fmt: skip
    job = subprocess.Popen(["bash", str(script), str(topology)], cwd=tmp_path, env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           start_new_session=True)  # fmt: skip
    running = tmp_path / ".pipeline" / "slownodes" / "frame.json"
    deadline = time.monotonic() + 60
    while not running.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(5)  # running, once both members have joined: a few items held on them
    if whole_job:
        os.killpg(job.pid, signal.SIGTERM)
    else:
        job.send_signal(signal.SIGTERM)
    _, err = job.communicate(timeout=90)
    summary = json.loads((tmp_path / ".pipeline" / "slownodes" / "summary.json").read_text())
    assert "SIGTERM received: draining" in err, err
    assert summary["stages"]["src"]["records_out"] < 60  # stopped early, not run to its end
    held = summary["stages"]["hold"]
    assert held["records_in"] == summary["stages"]["src"]["records_out"]  # drained: none lost
    return err, job.returncode, summary


@pytest.mark.parametrize("scheduler", sorted(NODES))
def test_the_schedulers_sigterm_drains_a_multi_node_run_and_its_workers_end_with_it(
    tmp_path: Path, scheduler: str
) -> None:
    # the batch shell alone, as --signal=B: and -wa signal
    err, code, _ = _signalled_multi_node_job(tmp_path, scheduler, whole_job=False)
    assert code == 0 and f"ended with exit code 0 {WORKERS_ENDED[scheduler]}" in err


@pytest.mark.parametrize("scheduler", sorted(NODES))
def test_a_sigterm_to_every_process_of_the_job_still_drains_the_run(
    tmp_path: Path, scheduler: str
) -> None:
    # as scancel, a job's end, or a warning action sent to the whole job: the run gets it
    # from the scheduler and again from the job script, the workers ignore it and serve
    # the drain
    err, code, _ = _signalled_multi_node_job(tmp_path, scheduler, whole_job=True)
    assert code == 0, err
    assert "received again at once" in err and "stopped at once" not in err
