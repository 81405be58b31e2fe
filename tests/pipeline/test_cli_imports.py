"""What the ``pipeline`` command imports before it runs anything: building the parsers and
printing help must not load the libraries that only some commands use (the web server, the
MQTT client, ZeroMQ, the compiler, the plotting library, the database and directory
clients), so that every command starts fast."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import REPO

#: libraries that only the commands that run them may import
HEAVY = ("aiohttp", "aiomqtt", "zmq", "numba", "matplotlib", "aiomysql", "ldap3")

COMMANDS = ["run", "check", "ps", "status", "scale", "pause", "resume", "stop", "kill",
            "monitor", "web", "mqtt", "gen", "buckets", "diff", "graph", "history"]  # fmt: skip


def run_python(code: str) -> str:
    """The output of ``code``, run in an interpreter of its own; it must succeed."""
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def loaded_after(code: str) -> list[str]:
    """The libraries of HEAVY that ``code`` has imported, run in an interpreter of its own."""
    out = run_python(
        textwrap.dedent(code)
        + textwrap.dedent(f"""
        import json, sys
        print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))
    """)
    )
    loaded: list[str] = json.loads(out.splitlines()[-1])
    return loaded


def help_of(*args: str) -> str:
    """Code that prints the help of ``pipeline ARGS`` as the command does, and checks it."""
    return f"""
        import contextlib, io
        from pipeline.cli import main
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
            main([*{list(args)!r}, "--help"])
        assert "usage: pipeline" in out.getvalue(), out.getvalue()
    """


def test_pipeline_help_imports_no_heavy_library() -> None:
    assert loaded_after(help_of()) == []


@pytest.mark.parametrize("command", COMMANDS)
def test_a_commands_help_imports_no_heavy_library(command: str) -> None:
    assert loaded_after(help_of(command)) == []


def test_building_every_parser_imports_no_heavy_library() -> None:
    code = """
        from pipeline.cli import build_parser
        build_parser().parse_args(["gen", "text", "out"])
    """
    assert loaded_after(code) == []


def test_the_package_names_are_imported_when_first_used() -> None:
    run_python("""
        import sys
        import pipeline
        assert "pipeline.frame" not in sys.modules and "numpy" not in sys.modules
        from pipeline import *
        from pipeline.columns import Columns as defined
        assert Columns is defined and pipeline.Columns is defined
        assert all(name in globals() for name in pipeline.__all__)
        try:
            pipeline.NoSuchName
        except AttributeError as exc:
            assert "NoSuchName" in str(exc)
        else:
            raise AssertionError("pipeline.NoSuchName did not fail")
    """)
