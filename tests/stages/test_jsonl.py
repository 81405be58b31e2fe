from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from pipeline import Columns, Context
from pipeline.testing import run_stage
from stages.jsonl import WriteJsonLines


def test_writes_lines_atomically_and_columns_as_rows(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "out.jsonl"
    items = [{"a": 1}, {"b": b"\x00"}, Columns(x=np.arange(3), y=np.array([0.5, 1.5, 2.5]))]
    run_stage(WriteJsonLines, items, params={"path": str(path)})
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert rows[0] == {"a": 1} and rows[1] == {"b": {"$bytes": "AA=="}}
    assert rows[2:] == [{"x": 0, "y": 0.5}, {"x": 1, "y": 1.5}, {"x": 2, "y": 2.5}]
    assert not list(path.parent.glob("*.tmp"))


def test_each_replica_writes_its_own_file(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    ctx = Context("write", 1, 2, tmp_path)
    run_stage(WriteJsonLines, [{"a": 1}], params={"path": str(path)}, ctx=ctx)
    assert (tmp_path / "out.jsonl.1").read_text() == '{"a": 1}\n'
    assert not path.exists()


def test_nothing_appears_before_the_end(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    sink = WriteJsonLines(str(path))
    ctx = Context("write", 0, 1, tmp_path)
    sink.setup(ctx)
    sink.process_batch([{"a": 1}], ctx)
    assert not path.exists()
    sink.finish(ctx)
    assert path.exists()
