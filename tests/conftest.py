"""Fixtures shared by every test: a run directory per test, and a check that no worker
process or socket file outlives the test that started it."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from pipeline.report import RunReport
from pipeline.supervisor import Supervisor
from pipeline.topology import Topology, build_topology
from pipeline.yamlfile import load

REPO = Path(__file__).resolve().parent.parent

#: fixtures of simulated hosts (network namespaces) for the tests that span hosts
pytest_plugins = ["tests.hosts"]

# The default topology ends by shipping its reports to an ingress service; a test ships
# only when it says where to (tests/stages/ingress start their own ingress server).
os.environ.setdefault("INGRESS_URL", "off")

# multiprocessing's own helpers live as long as the test session; they are not leftovers
_HELPERS = ("multiprocessing.forkserver", "multiprocessing.resource_tracker")


def _ours(p: psutil.Process) -> bool:
    try:
        cmd = " ".join(p.cmdline())
        return p.status() != psutil.STATUS_ZOMBIE and not any(h in cmd for h in _HELPERS)
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def pipeline_processes(frame: str, group: int) -> list[psutil.Process]:
    """Live worker processes titled ``pipeline: <frame> ...`` in process group ``group``
    (a command started with ``start_new_session`` leads a group of its own)."""
    prefix = f"pipeline: {frame} "
    found = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            cmd = " ".join(p.info["cmdline"] or [])
            if (
                cmd.startswith(prefix)
                and p.status() != psutil.STATUS_ZOMBIE
                and os.getpgid(p.pid) == group
            ):
                found.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied, ProcessLookupError):
            continue
    return found


@pytest.fixture(autouse=True)
def no_leftover_processes() -> Iterator[None]:
    me = psutil.Process()
    before = {p.pid for p in me.children(recursive=True)}
    yield
    deadline = time.monotonic() + 5
    while True:
        extra = [p for p in me.children(recursive=True) if p.pid not in before and _ours(p)]
        if not extra or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    for p in extra:
        p.kill()
    assert not extra, f"processes left behind: {[' '.join(p.cmdline()) for p in extra]}"


@pytest.fixture(autouse=True)
def no_running_frames() -> Iterator[None]:
    """A frame a failed test left running on a thread is stopped (before the check for
    leftover processes)."""
    yield
    from tests.running import Running  # noqa: PLC0415

    Running.stop_all()


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return tmp_path / "run"


def make_topology(text: str, run_dir: Path, **env: str) -> Topology:
    """A topology from YAML text; ``run_dir`` is set unless the text sets it."""
    text = textwrap.dedent(text)
    if "run_dir:" not in text:
        text = f"run_dir: {run_dir}\n" + text
    located = load(text, "test.yaml", {**os.environ, **env})
    return build_topology(located.data, located=located, origin="test.yaml")


def run_topology(text: str, run_dir: Path, **env: str) -> RunReport:
    report = Supervisor(make_topology(text, run_dir, **env)).run()
    assert_clean(run_dir)
    return report


def assert_clean(run_dir: Path) -> None:
    """Nothing of a finished frame is left: no socket directory, no frame record."""
    assert not (run_dir / "sockets").exists(), "socket directory left behind"
    assert not (run_dir / "frame.json").exists(), "frame record left behind"


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str
    #: also the id of the process group it led
    pid: int


def start_cli(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    """Start ``python -m pipeline`` as a user would, leading a process group of its own."""
    return subprocess.Popen(
        [sys.executable, "-m", "pipeline", *args],
        cwd=cwd or REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def cli(
    *args: str, cwd: Path | None = None, timeout: float = 60, env: dict[str, str] | None = None
) -> Ran:
    """Run ``python -m pipeline`` to its end."""
    proc = start_cli(*args, cwd=cwd, env=env)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        raise
    return Ran(proc.returncode, out, err, proc.pid)


@pytest.fixture
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A registry of running frames of the test's own (``pipeline ps`` and ``--frame``)."""
    folder = tmp_path / "registry"
    monkeypatch.setenv("PIPELINE_REGISTRY", str(folder))
    yield folder
