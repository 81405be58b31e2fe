"""The operating commands as a user types them, against a frame started by ``pipeline run``
in another process: ps, status, scale, pause, resume, stop, and ``run --web``."""

from __future__ import annotations

import json
import re
import time
import urllib.request
from pathlib import Path

import pytest

from pipeline.cli_control import REFUSED_EXIT
from pipeline.errors import ExitCode
from tests.conftest import cli, start_cli
from tests.pipeline.test_control import GRAPH, expected, sums

pytestmark = pytest.mark.integration


def wait_running(env: dict[str, str]) -> None:
    """Until the frame answers and every stage runs the replicas it should: the commands
    start fast enough to ask before the replicas are up."""
    deadline = time.monotonic() + 30
    while True:
        status = cli("status", "--json", env=env)
        if status.returncode == 0:
            stages = json.loads(status.stdout)["stages"].values()
            if all(s["alive"] == s["desired"] for s in stages):
                return
        assert time.monotonic() < deadline, "the frame never ran all its replicas"
        time.sleep(0.2)


def test_ps_status_scale_pause_resume_and_stop(tmp_path: Path, registry: Path) -> None:
    out = tmp_path / "out"
    topo = tmp_path / "t.yaml"
    n = 10**7  # far more than it sends before the stop: the frame must outlive the commands
    topo.write_text(f"run_dir: {tmp_path / 'run'}\n"
                    + GRAPH.format(name="typed", n=n, keys=13, pause=0.01, out=out))  # fmt: skip
    env = {"PIPELINE_REGISTRY": str(registry)}
    frame = start_cli("run", str(topo), "--progress", "off", env=env)
    try:
        wait_running(env)
        ps = cli("ps", env=env)
        assert ps.returncode == 0
        assert re.search(rf"typed\s+{frame.pid}\s", ps.stdout), ps.stdout
        records = json.loads(cli("ps", "--json", env=env).stdout)
        assert [r["frame"] for r in records] == ["typed"]
        status = cli("status", env=env)
        assert status.returncode == 0
        assert "frame typed" in status.stdout and "running" in status.stdout
        assert re.search(r"^double\s+1/1\s", status.stdout, re.M), status.stdout
        scaled = cli("scale", "total", "3", "--wait", env=env)
        assert scaled.returncode == 0, scaled.stderr
        assert "total runs 3 replicas" in scaled.stdout
        status = cli("status", "--json", env=env)
        assert status.returncode == 0, status.stderr
        data = json.loads(status.stdout)
        assert data["stages"]["total"]["desired"] == 3
        refused = cli("scale", "src", "2", env=env)
        assert refused.returncode == REFUSED_EXIT
        assert "it is a source" in refused.stderr and "REFUSED" in refused.stderr
        assert cli("pause", "--frame", "typed", env=env).returncode == 0
        assert json.loads(cli("status", "--json", env=env).stdout)["state"] == "paused"
        assert cli("resume", "--frame", str(frame.pid), env=env).returncode == 0
        assert cli("stop", "--frame", str(tmp_path / "run"), env=env).returncode == 0
        _, err = frame.communicate(timeout=60)
    finally:
        if frame.poll() is None:
            frame.kill()
            frame.communicate()
    assert frame.returncode == ExitCode.OK, err
    assert "stopped by a stop request" in err
    got = sums(out)
    sent = sum(c for _, c in got.values())
    assert 0 < sent <= n
    assert got == expected(sent, 13)  # one source: what it sent is exactly i < sent
    gone = cli("status", env=env)
    assert gone.returncode == REFUSED_EXIT and "no frame" in gone.stderr


def test_run_with_web_starts_the_web_monitor_for_its_frame(tmp_path: Path, registry: Path) -> None:
    topo = tmp_path / "t.yaml"
    topo.write_text(f"run_dir: {tmp_path / 'run'}\n"
                    + GRAPH.format(name="webbed", n=10**7, keys=3, pause=0.01,
                                   out=tmp_path / "o"))  # fmt: skip
    env = {"PIPELINE_REGISTRY": str(registry), "PIPELINE_WEB_TOKEN": "t0ken"}
    frame = start_cli("run", str(topo), "--progress", "off", "--web", "127.0.0.1:0", env=env)
    try:
        assert frame.stdout is not None
        line = frame.stdout.readline()
        url = re.search(r"(http://127\.0\.0\.1:\d+/)\?token=t0ken", line)
        assert url, line
        with urllib.request.urlopen(url.group(1) + "metrics", timeout=10) as reply:
            assert 'frame="webbed"' in reply.read().decode()
        request = urllib.request.Request(
            url.group(1) + "api/control",
            data=json.dumps({"command": "stop"}).encode(),
            headers={"Authorization": "Bearer t0ken", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as reply:
            assert json.loads(reply.read())["status"] == "ok"
        _, err = frame.communicate(timeout=60)
    finally:
        if frame.poll() is None:
            frame.kill()
            frame.communicate()
    assert frame.returncode == ExitCode.OK, err
