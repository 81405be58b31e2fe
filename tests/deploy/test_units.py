"""The systemd units in deploy/ pass ``systemd-analyze verify`` (with the command they
start put where this checkout has it), and start commands this version has."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.servers import binary

UNITS = sorted((REPO / "deploy" / "systemd").glob("*@.*"))
INSTALLED = "/opt/pipeline/.venv/bin/pipeline"


def test_there_is_a_unit_for_a_frame_a_batch_run_a_worker_and_a_member() -> None:
    wanted = {"pipeline@.service", "pipeline-batch@.service", "pipeline-batch@.timer",
              "pipeline-worker@.service", "pipeline-member@.service"}  # fmt: skip
    assert {u.name for u in UNITS} >= wanted


@pytest.mark.parametrize("unit", UNITS, ids=lambda p: p.name)
def test_a_unit_passes_systemd_analyze_verify(unit: Path, tmp_path: Path) -> None:
    here = str(Path(sys.executable).parent / "pipeline")
    for u in UNITS:  # a timer is checked with the service it starts beside it
        (tmp_path / u.name).write_text(u.read_text().replace(INSTALLED, here))
    done = subprocess.run([binary("systemd-analyze", "systemd"), "verify", "--man=no",
                           str(tmp_path / unit.name).replace("@.", "@wrstat.")],
                          cwd=tmp_path, capture_output=True, text=True, check=False)  # fmt: skip
    problems = [line for line in (done.stdout + done.stderr).splitlines()
                if "/etc/pipeline" not in line and "/var/lib/pipeline" not in line]  # fmt: skip
    assert done.returncode == 0 and not problems, done.stdout + done.stderr


@pytest.mark.parametrize("unit", [u for u in UNITS if u.suffix == ".service"],
                         ids=lambda p: p.name)  # fmt: skip
def test_the_command_a_unit_starts_exists_with_its_options(unit: Path) -> None:
    line = next(x for x in unit.read_text().splitlines() if x.startswith("ExecStart="))
    words = line.removeprefix("ExecStart=").split()
    assert words[0] == INSTALLED
    command = words[1]
    helped = subprocess.run([sys.executable, "-m", "pipeline", command, "--help"], cwd=REPO,
                            capture_output=True, text=True, check=False)  # fmt: skip
    assert helped.returncode == 0, helped.stderr
    for option in (w for w in words[2:] if w.startswith("--")):
        assert option in helped.stdout, f"{command} has no {option}"
