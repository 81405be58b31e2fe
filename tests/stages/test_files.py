from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from pipeline import Context
from pipeline.testing import run_stage
from stages.files import expand, read_jsonl, read_lines


def ctx(tmp_path: Path, replica: int = 0, replicas: int = 1) -> Context:
    return Context("read", replica, replicas, tmp_path)


def test_lines_carry_file_and_line_number(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("one\r\ntwo\n\nthree")
    out = run_stage(read_lines, params={"paths": str(tmp_path / "*.txt")})
    assert [(r["line"], r["text"]) for r in out] == [(1, "one"), (2, "two"), (3, ""), (4, "three")]
    assert out[0]["file"] == str(tmp_path / "a.txt")
    out = run_stage(read_lines, params={"paths": str(tmp_path / "a.txt"), "skip_blank": True})
    assert len(out) == 3


def test_files_are_shared_among_replicas(tmp_path: Path) -> None:
    for i in range(5):
        (tmp_path / f"f{i}.txt").write_text(f"{i}\n")
    pattern = str(tmp_path / "*.txt")
    seen = []
    for r in range(2):
        out = run_stage(read_lines, params={"paths": pattern}, ctx=ctx(tmp_path, r, 2))
        seen.extend(x["text"] for x in out)
    assert sorted(seen) == ["0", "1", "2", "3", "4"]


def test_gzip_and_a_truncated_gzip(tmp_path: Path) -> None:
    data = b"".join(b"line %d\n" % i for i in range(20000))
    packed = gzip.compress(data)
    (tmp_path / "ok.gz").write_bytes(packed)
    (tmp_path / "cut.gz").write_bytes(packed[: len(packed) // 2])
    assert len(run_stage(read_lines, params={"paths": str(tmp_path / "ok.gz")})) == 20000
    c = ctx(tmp_path)
    out = run_stage(read_lines, params={"paths": str(tmp_path / "cut.gz")}, ctx=c)
    assert 0 < len(out) < 20000
    ((what, reason),) = c.incomplete
    assert what.endswith("cut.gz") and reason.startswith(f"read {len(out)} lines, then:")


def test_undecodable_line_is_reported_and_skipped(tmp_path: Path) -> None:
    (tmp_path / "x.txt").write_bytes(b"ok\n\xff\nfine\n")
    c = ctx(tmp_path)
    out = run_stage(read_lines, params={"paths": str(tmp_path / "x.txt")}, ctx=c)
    assert [r["text"] for r in out] == ["ok", "fine"]
    assert c.incomplete == [
        (f"{tmp_path / 'x.txt'}:2", "not valid utf-8 (invalid start byte); line skipped")
    ]


def test_no_match_says_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"no file matches .*nothing\*\.txt"):
        expand(str(tmp_path / "nothing*.txt"))


def test_jsonl_records_and_bad_lines(tmp_path: Path) -> None:
    (tmp_path / "r.jsonl").write_text('{"a": 1}\n\n[1, 2]\nnot json\n"s"\n')
    c = ctx(tmp_path)
    out = run_stage(read_jsonl, params={"paths": str(tmp_path / "r.jsonl")}, ctx=c)
    assert out == [{"a": 1}, [1, 2], "s"]
    assert [w for w, _ in c.incomplete] == [f"{tmp_path / 'r.jsonl'}:4"]
