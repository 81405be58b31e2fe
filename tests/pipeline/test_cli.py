"""The ``pipeline`` command as users meet it: help, check, run, exit codes."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from pipeline.errors import ExitCode
from tests.conftest import REPO, cli, pipeline_processes

WORDCOUNT = REPO / "examples" / "wordcount.yaml"


OPERATING = ["ps", "status", "scale", "pause", "resume", "stop", "kill", "monitor", "web", "mqtt",
             "history"]  # fmt: skip


@pytest.mark.parametrize(
    "args", [[], ["run"], ["check"], ["gen"], ["gen", "text"], *([c] for c in OPERATING)]
)
def test_every_command_has_help_with_examples(args: list[str]) -> None:
    proc = cli(*args, "--help")
    assert proc.returncode == 0
    assert "usage: pipeline" in proc.stdout
    if args not in (["gen"], ["gen", "text"]):
        assert "examples:" in proc.stdout


def test_no_command_is_a_usage_error() -> None:
    proc = cli()
    assert proc.returncode == ExitCode.USAGE
    assert "required: COMMAND" in proc.stderr


def test_check_prints_the_graph(tmp_path: Path) -> None:
    proc = cli("check", str(WORDCOUNT))
    assert proc.returncode == 0, proc.stderr
    assert "words" in proc.stdout and "route key 'word'" in proc.stdout
    assert "ok: the topology is valid" in proc.stdout


def test_check_reports_problems_with_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("stages:\n  - name: a\n    run: tests.stagelib:count_to\n    next: b\n")
    proc = cli("check", str(bad))
    assert proc.returncode == ExitCode.USAGE
    assert f"{bad}:4: stage 'a': next names 'b'" in proc.stderr


def test_a_folder_that_cannot_be_written_is_named_without_a_traceback(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    proc = cli("gen", "text", str(tmp_path / "file" / "sample"))
    assert proc.returncode == ExitCode.FAILED
    assert f"{tmp_path / 'file'}" in proc.stderr and "Not a directory" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_missing_topology_is_a_usage_error(tmp_path: Path) -> None:
    proc = cli("run", cwd=tmp_path)
    assert proc.returncode == ExitCode.USAGE
    assert "no topology file at topology.yaml" in proc.stderr


def test_env_option_fills_variables(tmp_path: Path) -> None:
    topo = tmp_path / "t.yaml"
    topo.write_text(
        f"name: envy\nrun_dir: {tmp_path}/run\nstages:\n"
        "  - name: src\n    run: tests.stagelib:count_to\n    params:\n      n: ${N}\n"
        "    next: sink\n"
        f"  - name: sink\n    run: tests.stagelib:Collect\n    params: {{folder: {tmp_path}/out}}\n"
    )
    assert "environment variable N is not set" in cli("check", str(topo)).stderr
    proc = cli("run", str(topo), "-e", "N=7")
    assert proc.returncode == 0, proc.stderr
    assert "src" in proc.stderr and "envy: ok" in proc.stderr


def test_unreadable_input_exits_3_with_reports_written(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "good.txt").write_text("alpha beta\n")
    (data / "bad.txt").write_bytes(b"gamma\n\xff\xfe broken\ndelta\n")
    out = tmp_path / "counts.jsonl"
    proc = cli(
        "run",
        str(WORDCOUNT),
        "-e",
        f"INPUT={data}/*.txt",
        "-e",
        f"OUTPUT={out}",
        cwd=tmp_path,
    )
    assert proc.returncode == ExitCode.INCOMPLETE_INPUT, proc.stderr
    assert re.search(
        r"incomplete input: .*bad.txt:2: not valid utf-8 .*; line skipped", proc.stderr
    )
    counts = {json.loads(x)["word"]: json.loads(x)["count"] for x in out.read_text().splitlines()}
    assert counts == {"alpha": 1, "beta": 1, "gamma": 1, "delta": 1}


def test_the_wordcount_example_counts_words(tmp_path: Path) -> None:
    gen = cli("gen", "text", "sample-data/text", "--files", "3", "--lines", "500", cwd=tmp_path)
    assert gen.returncode == 0, gen.stderr
    shutil.copy(WORDCOUNT, tmp_path / "topology.yaml")
    proc = cli("run", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert not pipeline_processes("wordcount", proc.pid)
    expected: Counter[str] = Counter()
    for path in sorted((tmp_path / "sample-data" / "text").glob("*.txt")):
        expected.update(re.findall(r"[\w']+", path.read_text().lower()))
    got = {}
    for line in (tmp_path / "out" / "word-counts.jsonl").read_text().splitlines():
        row = json.loads(line)
        got[row["word"]] = row["count"]
    assert got == dict(expected)
    summary = json.loads((tmp_path / ".pipeline" / "wordcount" / "summary.json").read_text())
    assert summary["exit_code"] == 0


def test_console_script_and_module_are_the_same_command() -> None:
    script = Path(sys.executable).parent / "pipeline"
    if not script.exists():
        pytest.fail(f"the console script is not installed next to {sys.executable}")
    a = subprocess.run([str(script), "--help"], capture_output=True, text=True, check=True)
    assert a.stdout == cli("--help").stdout
