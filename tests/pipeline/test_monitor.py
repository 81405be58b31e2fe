"""``pipeline monitor`` in a real terminal (tmux, 80x24) against a live frame: it shows
every stage's figures, its keys scale, pause and resume, and it exits when the frame stops."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from pipeline.errors import ExitCode
from pipeline.monitor import render
from tests.conftest import REPO
from tests.pipeline.test_control import GRAPH
from tests.running import Running

pytestmark = pytest.mark.integration


class Tmux:
    """A tmux server of the test's own, with one 80x24 window running a command."""

    def __init__(self, name: str, command: str, env: dict[str, str]) -> None:
        self.base = ["tmux", "-L", name]
        exports = " ".join(f"{k}={v}" for k, v in env.items())
        subprocess.run(
            [*self.base, "-f", "/dev/null", "new-session", "-d", "-x", "80", "-y", "24",
             "-s", "m", f"cd {REPO} && env {exports} {command}"],
            check=True,
        )  # fmt: skip
        subprocess.run([*self.base, "set-option", "-t", "m", "remain-on-exit", "on"], check=True)

    def screen(self) -> str:
        out = subprocess.run(
            [*self.base, "capture-pane", "-p", "-t", "m"],
            check=False,
            capture_output=True,
            text=True,
        )
        return out.stdout

    def keys(self, *keys: str) -> None:
        subprocess.run([*self.base, "send-keys", "-t", "m", *keys], check=True)

    def dead(self) -> bool:
        out = subprocess.run(
            [*self.base, "display-message", "-p", "-t", "m", "#{pane_dead}"],
            check=False, capture_output=True, text=True,
        )  # fmt: skip
        return out.stdout.strip() == "1"

    def wait_for(self, what: Callable[[str], bool], timeout: float = 15) -> str:
        deadline = time.monotonic() + timeout
        while True:
            text = self.screen()
            if what(text):
                return text
            if time.monotonic() > deadline:
                raise AssertionError(f"the screen never showed what was expected:\n{text}")
            time.sleep(0.2)

    def close(self) -> None:
        subprocess.run([*self.base, "kill-server"], check=False, capture_output=True)


@pytest.fixture
def tmux(tmp_path: Path) -> Iterator[Callable[[str, dict[str, str]], Tmux]]:
    assert shutil.which("tmux"), "tmux is missing: make test installs it"
    made: list[Tmux] = []

    def start(command: str, env: dict[str, str]) -> Tmux:
        t = Tmux(f"pipeline-test-{os.getpid()}-{len(made)}", command, env)
        made.append(t)
        return t

    yield start
    for t in made:
        t.close()


def row(screen: str, stage: str) -> list[str]:
    """The cells of a stage's row on the screen."""
    for line in screen.splitlines():
        cells = line.split()
        if cells and cells[0] == stage:
            return cells
    raise AssertionError(f"no row for stage {stage!r} on:\n{screen}")


def test_the_monitor_shows_live_figures_and_its_keys_operate_the_frame(
    tmp_path: Path, registry: Path, tmux: Callable[[str, dict[str, str]], Tmux]
) -> None:
    out = tmp_path / "out"
    run = Running(GRAPH.format(name="watched", n=10**7, keys=11, pause=0.01, out=out),
                  tmp_path / "run")  # fmt: skip
    env = {"PIPELINE_REGISTRY": str(registry), "PYTHONPATH": str(REPO), "TERM": "xterm-256color"}
    term = tmux(f"{sys.executable} -m pipeline monitor --timeout 2", env)
    stages = ("src", "double", "total", "sink")
    term.wait_for(lambda s: "watched running" in s and all(row(s, x)[1] == "1/1" for x in stages))
    # every column fits: the memory column (the last one) is on every stage's row
    screen = term.wait_for(lambda s: row(s, "double")[-1].endswith("MB"))
    assert all(row(screen, s)[-1].endswith("MB") for s in stages)
    assert "↑↓ stage" in screen  # the keys are shown
    # live: the rate of 'double' is non-zero, the count of the selected stage grows
    screen = term.wait_for(lambda s: row(s, "double")[2] not in ("0", "-"))
    first = run.frame.status()["stages"]["src"]["records_out"]
    term.wait_for(lambda s: int(s.split("src: ")[1].split(" ")[2].replace(",", "")) > first)
    # down twice selects 'total'; + scales it to 2
    term.keys("Down", "Down", "+")
    term.wait_for(lambda s: "scale total to 2: ok" in s)
    run.frame.wait_scaled("total", 2, timeout=30)
    term.wait_for(lambda s: row(s, "total")[1] == "2/2")
    # p pauses, r resumes
    term.keys("p")
    term.wait_for(lambda s: "watched paused" in s)
    assert run.frame.status()["state"] == "paused"
    term.keys("r")
    term.wait_for(lambda s: "watched running" in s)
    # - on 'double' (up once) is refused? no: it is at 1, and 0 replicas is not allowed
    term.keys("Up", "-")
    term.wait_for(lambda s: "scale double to 0: refused" in s)
    # the frame stops: the monitor says so and exits
    run.frame.request("stop")
    report = run.wait()
    assert report.exit_code == ExitCode.OK, report.errors
    term.wait_for(lambda s: "watched has stopped" in s or "has stopped" in s, timeout=20)
    deadline = time.monotonic() + 10
    while not term.dead():
        assert time.monotonic() < deadline, "the monitor did not exit"
        time.sleep(0.2)


def test_q_leaves_the_frame_running(
    tmp_path: Path, registry: Path, tmux: Callable[[str, dict[str, str]], Tmux]
) -> None:
    run = Running(GRAPH.format(name="left", n=10**7, keys=3, pause=0.01, out=tmp_path / "o"),
                  tmp_path / "run")  # fmt: skip
    env = {"PIPELINE_REGISTRY": str(registry), "PYTHONPATH": str(REPO)}
    term = tmux(f"{sys.executable} -m pipeline monitor", env)
    term.wait_for(lambda s: "left running" in s)
    term.keys("q")
    term.wait_for(lambda s: "monitor closed; the frame goes on" in s)
    assert run.frame.status()["state"] == "running"
    run.frame.request("stop")
    assert run.wait().exit_code == ExitCode.OK


def test_the_screen_fits_80_columns_with_long_names_and_big_numbers() -> None:
    stage = {
        "progress": [1.5e9, 3e9, "bytes"],
        "desired": 12, "alive": 12, "ended": False, "rate_in": 12_345_678.0,
        "rate_out": 9_876_543_210.0, "backlog": 123_456, "busy": 11.5, "p50": 0.0004,
        "p99": 12.5, "errors": 1234, "cpu": 11.9, "rss": 123_456_789_012, "records_in": 10**12,
        "records_out": 10**12, "replicas": [
            {"index": i, "pid": 4_000_000 + i, "state": "running", "rate_in": 1e6,
             "busy": 0.99, "cpu": 0.98, "rss": 10**9, "held": 16} for i in range(12)
        ],
    }  # fmt: skip
    status = {
        "frame": "a-rather-long-frame-name", "state": "running", "uptime": 123456.0,
        "pid": 4_194_303, "errors": ["x" * 200],
        "rescale": {"stage": "usage", "from": 2, "to": 3, "phase": "migrating"},
        "stages": {"a-very-long-stage-name": stage, "usage": stage},
    }  # fmt: skip
    console = Console(width=80, record=True, file=open(os.devnull, "w"))  # noqa: SIM115
    console.print(render(status, 0, "y" * 200, 80))
    console.file.close()
    lines = console.export_text().splitlines()
    assert len(lines) <= 24
    assert all(len(line) <= 80 for line in lines)
    assert row("\n".join(lines), "usage")[-1] == "123.5GB"
    bar = [line for line in lines if "left" in line]
    assert len(bar) == 2 and " 50% 1.5 GB of 3.0 GB 34:17:36 left" in bar[1], bar


def test_many_stages_scroll_with_the_selection_and_the_screen_still_fits() -> None:
    def stage(i: int) -> dict[str, Any]:
        return {
            "desired": 1, "alive": 1, "ended": False, "rate_in": float(i), "rate_out": 0.0,
            "backlog": 0, "busy": 0.5, "p50": None, "p99": None, "errors": 0, "cpu": 0.1,
            "rss": 10**8, "records_in": i, "records_out": 0, "progress": [1, 4, "bytes"],
            "replicas": [{"index": 0, "pid": 100 + i, "state": "running", "rate_in": 1.0,
                          "busy": 0.5, "cpu": 0.1, "rss": 10**8, "held": 0}],
        }  # fmt: skip

    status = {"frame": "wide", "state": "running", "uptime": 10.0, "pid": 1, "errors": [],
              "stages": {f"stage{i:02d}": stage(i) for i in range(30)}}  # fmt: skip
    for selected, visible, hidden in ((0, "stage00", "stage09"), (20, "stage20", "stage00"),
                                      (29, "stage29", "stage20")):  # fmt: skip
        console = Console(width=80, height=24, record=True, file=open(os.devnull, "w"))  # noqa: SIM115
        console.print(render(status, selected, "", 80))
        console.file.close()
        lines = console.export_text().splitlines()
        assert len(lines) <= 24, len(lines)
        text = "\n".join(lines)
        assert row(text, visible)[1] == "1/1"
        assert f"{hidden} " not in text.split("#")[0]  # neither its row nor its bar
        assert "of 30 (↑↓ to see more)" in text


def test_the_hosts_of_a_frame_on_several_are_shown_and_the_screen_still_fits() -> None:
    replicas = [{"index": i, "pid": 100 + i, "state": "running", "rate_in": 1.0, "busy": 0.5,
                 "cpu": 0.5, "rss": 10**8, "held": 1, "host": host}
                for i, host in enumerate((None, "a-member-with-a-long-name-0", "bee"))]  # fmt: skip
    stage = {"progress": None, "desired": 3, "alive": 3, "ended": False, "rate_in": 1.0,
             "rate_out": 1.0, "backlog": 0, "busy": 0.5, "p50": 0.001, "p99": 0.002,
             "errors": 0, "cpu": 0.5, "rss": 10**8, "records_in": 10, "records_out": 10,
             "replicas": replicas}  # fmt: skip
    hosts = [{"name": "bee", "group": "pool", "state": "joined", "workers": 1},
             {"name": "cee", "group": "pool", "state": "lost", "workers": 0}]  # fmt: skip
    status = {"frame": "f", "state": "running", "uptime": 5.0, "pid": 1, "errors": [],
              "rescale": None, "stages": {"usage": stage}, "hosts": hosts}  # fmt: skip
    console = Console(width=80, record=True, file=open(os.devnull, "w"))  # noqa: SIM115
    console.print(render(status, 0, "", 80))
    console.file.close()
    lines = console.export_text().splitlines()
    assert all(len(line) <= 80 for line in lines)
    assert "hosts: bee joined (1) · cee lost (0)" in lines
    table = [line.split() for line in lines if line.split()[:1] in (["0"], ["1"], ["2"])]
    assert [row[-1] for row in table] == ["here", "a-member-with…", "bee"]
