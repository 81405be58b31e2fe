"""The reader: stats files streamed into chunks of whole lines, however the gzip ends."""

from __future__ import annotations

import gzip
import json
import zlib
from pathlib import Path
from typing import Any

import pytest

from pipeline.contract import Context
from pipeline.errors import ExitCode
from pipeline.testing import run_stage
from stages.wrstat.read import read_stats
from tests.conftest import REPO, cli

pytestmark = pytest.mark.integration

LINE = b"L2x1c3RyZS9zY3JhdGNoOS9oZ2kvcHJvamVjdHMvcDEvYS5iYW0=\t%d\t1\t2\t3\t4\t5\tf\t%d\t1\t9"


def lines(n: int) -> bytes:
    return b"".join(LINE % (i, i) + b"\n" for i in range(n))


def name(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return folder / "20261101_scratch9.a.b.stats.gz"


def read(path: Path, chunk_mib: float = 4.0) -> tuple[list[dict[str, Any]], Context]:
    ctx = Context("read", 0, 1, path.parent)
    out = run_stage(read_stats, params={"path": str(path), "chunk_mib": chunk_mib}, ctx=ctx)
    return out, ctx


def joined(items: list[dict[str, Any]]) -> bytes:
    return b"".join(bytes(i["data"]) for i in items if i["kind"] == "chunk")


def test_chunks_hold_whole_lines_numbered_from_one(tmp_path: Path) -> None:
    data = lines(5000)
    path = name(tmp_path)
    path.write_bytes(gzip.compress(data))
    items, ctx = read(path, chunk_mib=0.05)
    chunks = [i for i in items if i["kind"] == "chunk"]
    assert len(chunks) > 5
    assert joined(items) == data
    assert all(bytes(c["data"]).endswith(b"\n") for c in chunks)
    first = [c["line"] for c in chunks]
    counts = [bytes(c["data"]).count(b"\n") for c in chunks]
    assert first == [1 + sum(counts[:k]) for k in range(len(chunks))]
    assert chunks[0]["mount"] == "/lustre/scratch9"  # from the first path: the old naming
    assert (chunks[0]["encoding"], chunks[0]["ncols"], chunks[0]["volume"]) == (0, 11, "scratch9")
    note = items[-1]
    assert note["kind"] == "file" and note["lines"] == 5000 and note["complete"]
    assert ctx.incomplete == []
    assert ctx.done == (path.stat().st_size, path.stat().st_size, "bytes")


def test_several_gzip_members_read_as_one_stream(tmp_path: Path) -> None:
    data = lines(3000)
    path = name(tmp_path)
    path.write_bytes(gzip.compress(data[:70_001]) + gzip.compress(data[70_001:]))
    items, _ = read(path, chunk_mib=0.02)
    assert joined(items) == data and items[-1]["lines"] == 3000 and items[-1]["complete"]


def test_a_last_line_without_a_line_end_still_counts(tmp_path: Path) -> None:
    data = lines(10)
    path = name(tmp_path)
    path.write_bytes(gzip.compress(data[:-1]))
    items, ctx = read(path)
    assert joined(items) == data and items[-1]["lines"] == 10 and ctx.incomplete == []


def test_a_truncated_file_gives_every_whole_line_and_rejects_the_partial_one(
    tmp_path: Path,
) -> None:
    data = lines(20_000)
    packed = zlib.compressobj(6, zlib.DEFLATED, 31)
    whole = packed.compress(data) + packed.flush()
    path = name(tmp_path)
    path.write_bytes(whole[: len(whole) // 2])
    items, ctx = read(path, chunk_mib=0.1)
    got = joined(items)
    assert got and data.startswith(got) and got.endswith(b"\n")
    reject = next(i for i in items if i["kind"] == "reject")
    assert reject["line"] == got.count(b"\n") + 1
    assert reject["reason"] == "the file ends in the middle of this line"
    assert data[len(got) :].startswith(reject["raw"].replace("\\t", "\t").encode())
    note = items[-1]
    assert not note["complete"] and note["lines"] == got.count(b"\n") + 1
    assert "truncated" in note["problem"]
    ((what, why),) = ctx.incomplete
    assert what == str(path)
    assert f"{len(whole) // 2:,} compressed bytes" in why and "lines read up to there" in why


def test_corrupt_data_stops_the_file_where_it_breaks(tmp_path: Path) -> None:
    data = lines(20_000)
    whole = bytearray(gzip.compress(data))
    whole[len(whole) // 2 : len(whole) // 2 + 64] = b"\xff" * 64
    path = name(tmp_path)
    path.write_bytes(bytes(whole))
    items, ctx = read(path, chunk_mib=0.1)
    # deflate finds some damage only later, at the latest by the checksum at the end: what
    # was decompressed before is passed on; the file is reported as not read whole
    assert joined(items)[:100_000] == data[:100_000]
    assert "the gzip data is corrupt after" in items[-1]["problem"]
    assert not items[-1]["complete"] and len(ctx.incomplete) == 1


def test_a_truncated_file_exits_3_with_all_reports_written(tmp_path: Path) -> None:
    data = lines(20_000)
    whole = gzip.compress(data)
    path = name(tmp_path / "in")
    path.write_bytes(whole[: len(whole) * 3 // 4])
    out = tmp_path / "reports"
    proc = cli("run", str(REPO / "topology.yaml"), "--progress", "off", "-e",
               f"WRSTAT_DIR={path.parent}", "-e", f"REPORT_DIR={out}", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == ExitCode.INCOMPLETE_INPUT, proc.stderr
    assert "the gzip stream is truncated" in proc.stderr
    for kind in ("group", "user", "directory"):
        assert (out / f"{kind}-20261101.tsv").is_file()
    rejects = (out / "rejects-20261101.tsv").read_text().splitlines()
    assert len(rejects) == 2 and "the file ends in the middle of this line" in rejects[1]
    read_lines = int(rejects[1].split("\t")[1]) - 1
    usage = sum(
        int(r.split("\t")[5]) for r in (out / "group-20261101.tsv").read_text().splitlines()[1:]
    )
    assert usage == sum(range(read_lines))  # size i on line i + 1
    summary = json.loads((tmp_path / ".pipeline" / "wrstat" / "summary.json").read_text())
    assert summary["exit_code"] == ExitCode.INCOMPLETE_INPUT


def test_bad_lines_go_to_the_rejects_file_and_the_run_still_succeeds(tmp_path: Path) -> None:
    data = lines(100).splitlines()
    data[10] = b"garbage"
    data[50] = data[50].replace(b"\tf\t", b"\tq\t")
    path = name(tmp_path / "in")
    path.write_bytes(gzip.compress(b"\n".join(data) + b"\n"))
    out = tmp_path / "reports"
    proc = cli("run", str(REPO / "topology.yaml"), "-e", f"WRSTAT_DIR={path}",
               "-e", f"REPORT_DIR={out}", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == ExitCode.OK, proc.stderr
    rows = [r.split("\t") for r in (out / "rejects-20261101.tsv").read_text().splitlines()]
    assert rows[0] == ["File", "Line", "Reason", "Raw"]
    assert [(r[0], r[1], r[2]) for r in rows[1:]] == [
        (str(path), "11", "expected 11 tab-separated columns, found 1"),
        (str(path), "51", "column 8 (type) is not one of fdlsbcFX"),
    ]
    assert "100 lines from 1 file(s), 2 rejected (see rejects-20261101.tsv)" in proc.stderr
