"""The ``read_logs`` source without sockets: a directory of logs, chunks, gzip, replicas, the
regex format and its parameters."""

from __future__ import annotations

import gzip
import re
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pipeline import Columns, Context
from pipeline.testing import run_stage
from stages.buckets.logs import LogsError, read_logs
from stages.wrstat.escape import go_escape
from tests.stages.buckets.test_metpx import (
    FALL_BACK,
    KEPT,
    MONTREAL,
    REJECTED,
    SKIPPED,
    T,
    lines_of,
    reference,
    same,
    utc_ms,
)

TX = [*lines_of(KEPT + SKIPPED + REJECTED), *FALL_BACK]
RX = lines_of([
    f"{T} [INFO] (130 Bytes) Ingested SACN31_CWAO_290524___0006:file from am://cwao",
    f"{T} [ERROR] (130 Bytes) Ingest bad_one failed: bad header",
    f"{T} [INFO] 130 Bytes/sec",
])  # fmt: skip


def write(path: Path, lines: list[bytes], packed: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = b"".join(line + b"\n" for line in lines)
    path.write_bytes(gzip.compress(data) if packed else data)
    return path


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    """Two machines' logs, a rotated gzipped one among them, and files not to read."""
    root = tmp_path / "logs"
    write(root / "pxatx" / "tx_cmc.log", TX)
    write(root / "pxatx" / "tx_cmc.log.2026-10-31.gz", FALL_BACK, packed=True)
    write(root / "pxbrx" / "rx_cwao.log", RX)
    write(root / "pxatx" / ".tx_hidden.log", TX)
    write(root / ".old" / "pxatx" / "tx_old.log", TX)
    write(root / "pxatx" / "notes.txt", [b"not a log"])
    return root


def read(path: Path, ctx: Context | None = None, **params: Any) -> tuple[list[Any], Context]:
    ctx = ctx or Context("logs", 0, 1, path.parent)
    return run_stage(read_logs, params={"path": str(path), **params}, ctx=ctx), ctx


def by_file(items: list[Any]) -> dict[str, dict[str, Any]]:
    """Per file, in order: its columns put together, its rejects and its note (the items of
    a file come before its note)."""
    out: dict[str, dict[str, Any]] = {}
    columns: list[Columns] = []
    rejects: list[dict[str, Any]] = []
    for item in items:
        if isinstance(item, Columns):
            columns.append(item)
        elif item["kind"] == "reject":
            rejects.append(item)
        else:
            assert item["kind"] == "file"
            assert all(r["file"] == item["file"] for r in rejects)
            out[item["file"]] = {"columns": Columns.concat(columns), "rejects": rejects,
                                 "note": item}  # fmt: skip
            columns, rejects = [], []
    assert not columns and not rejects
    return out


def expected(lines: list[bytes], client: str, machine: str, direction: str) -> Columns:
    want: Columns = reference(lines, MONTREAL, direction)["columns"]
    n = len(want)
    return want.with_columns(
        client=np.full(n, client, dtype=object),
        machine=np.full(n, machine, dtype=object),
        direction=np.full(n, direction, dtype=object),
    )


def test_a_directory_of_logs_file_by_file_as_the_reference_reads_them(logs: Path) -> None:
    items, ctx = read(logs, chunk_mib=0.001)
    files = by_file(items)
    tx, rotated, rx = (str(logs / p) for p in ("pxatx/tx_cmc.log", "pxatx/tx_cmc.log.2026-10-31.gz",
                                               "pxbrx/rx_cwao.log"))  # fmt: skip
    assert list(files) == [tx, rotated, rx]  # sorted; dot-files and other names left out
    for file, lines, who in [(tx, TX, ("cmc", "pxatx", "tx")),
                             (rotated, FALL_BACK, ("cmc", "pxatx", "tx")),
                             (rx, RX, ("cwao", "pxbrx", "rx"))]:  # fmt: skip
        got = files[file]
        same(got["columns"], expected(lines, *who))
        want = reference(lines, MONTREAL, who[2])
        assert [r["line"] for r in got["rejects"]] == [n for n, _ in want["rejected"]]
        assert got["note"] == {
            "kind": "file", "file": file, "client": who[0], "machine": who[1],
            "direction": who[2], "lines": len(lines), "kept": len(want["columns"]),
            "skipped": len(want["skipped"]), "rejected": len(want["rejected"]),
            "complete": True, "problem": None,
        }  # fmt: skip
    size = sum((logs / f).stat().st_size for f in (tx, rotated, rx))
    assert ctx.done == (size, size, "bytes")
    assert ctx.incomplete == []
    assert len(ctx.warnings) == 1 and "notes.txt" in ctx.warnings[0]


def test_the_chunk_size_changes_nothing_but_the_chunks(logs: Path) -> None:
    tiny, _ = read(logs, chunk_mib=0.0001)  # about 100 bytes: a line or two a chunk
    whole, _ = read(logs)
    assert sum(isinstance(i, Columns) for i in tiny) > 20
    assert sum(isinstance(i, Columns) for i in whole) == 3
    for a, b in zip(by_file(tiny).values(), by_file(whole).values(), strict=True):
        same(a["columns"], b["columns"])
        assert a["rejects"] == b["rejects"] and a["note"] == b["note"]


def test_replicas_share_the_files_out(logs: Path) -> None:
    seen = []
    for replica in (0, 1):
        items, _ = read(logs, Context("logs", replica, 2, logs))
        seen.append(list(by_file(items)))
    assert seen[0] == [str(logs / "pxatx/tx_cmc.log"), str(logs / "pxbrx/rx_cwao.log")]
    assert seen[1] == [str(logs / "pxatx/tx_cmc.log.2026-10-31.gz")]


def test_one_file_and_a_last_line_without_a_line_end(tmp_path: Path) -> None:
    path = tmp_path / "pxatx" / "tx_cmc.log"
    write(path, TX)
    path.write_bytes(path.read_bytes()[:-1])
    items, _ = read(path, chunk_mib=0.0005)
    got = by_file(items)[str(path)]
    same(got["columns"], expected(TX, "cmc", "pxatx", "tx"))
    assert got["note"]["lines"] == len(TX) and got["note"]["complete"]


def test_gzip_of_several_members_reads_as_one_stream(tmp_path: Path) -> None:
    path = tmp_path / "pxatx" / "tx_cmc.log.gz"
    path.parent.mkdir()
    data = b"".join(line + b"\n" for line in TX)
    path.write_bytes(gzip.compress(data[:1001]) + gzip.compress(data[1001:]))
    items, _ = read(path, chunk_mib=0.001)
    got = by_file(items)[str(path)]
    same(got["columns"], expected(TX, "cmc", "pxatx", "tx"))


def test_a_truncated_gzip_file_gives_every_line_before_the_cut(tmp_path: Path) -> None:
    lines = [line for _ in range(5) for line in TX]
    data = b"".join(line + b"\n" for line in lines)
    assert len(data) < 65535  # one stored block: its bytes follow the 10 + 5 of the headers
    k = next(i for i in range(len(lines) // 2, len(lines)) if len(lines[i]) > 30)
    cut = len(b"".join(line + b"\n" for line in lines[:k])) + 20  # 20 bytes into line k + 1
    path = tmp_path / "pxatx" / "tx_cmc.log.gz"
    path.parent.mkdir()
    path.write_bytes(gzip.compress(data, compresslevel=0)[: 15 + cut])
    items, ctx = read(path, chunk_mib=0.01)
    got = by_file(items)[str(path)]
    note = got["note"]
    assert not note["complete"] and "truncated" in note["problem"]
    assert note["lines"] == k + 1
    assert note["lines"] == note["kept"] + note["skipped"] + note["rejected"]
    last = got["rejects"][-1]
    assert last["line"] == k + 1 and last["raw"] == go_escape(lines[k][:20])
    assert last["reason"] == "the file ends in the middle of this line"
    same(got["columns"], expected(lines[:k], "cmc", "pxatx", "tx"))
    ((what, why),) = ctx.incomplete
    assert what == str(path) and f"{k + 1:,} lines read up to there" in why


@pytest.mark.parametrize("chunk_mib", [0.001, 0.01, 4.0])
def test_a_truncated_gzip_file_loses_no_line_it_holds(tmp_path: Path, chunk_mib: float) -> None:
    # isal's decompressor keeps back the end of a stream that stops short until flushed
    lines = [line for _ in range(20) for line in TX]
    packed = gzip.compress(b"".join(line + b"\n" for line in lines), compresslevel=6)
    path = tmp_path / "pxatx" / "tx_cmc.log.gz"
    path.parent.mkdir()
    path.write_bytes(packed[: len(packed) * 2 // 3])
    held = zlib.decompressobj(31).decompress(path.read_bytes())
    assert not held.endswith(b"\n")
    items, _ = read(path, chunk_mib=chunk_mib)
    assert by_file(items)[str(path)]["note"]["lines"] == held.count(b"\n") + 1


REGEX_LINES = [
    b"2026-11-29T05:24:36.616+0000 client=cmc bytes=130 latency=1.5 status=OK queue=3 ratio=1 "
    b"file=a.grib2",
    b"2026-11-29T05:24:37.002-0500 client=nws bytes=7 latency=0.25 status=ERROR queue=4 ratio=0.5 "
    b"file=b.grib2",
    b"a line of another kind",
    b"2026-11-29T99:24:37.002+0000 client=nws bytes=7 latency=2 status=OK queue=4 ratio=1 file=c",
    b"2026-11-29T05:24:38.000+0000 client=nws bytes=7x latency=2 status=OK queue=4 ratio=1 file=c",
]
PATTERN = (
    r"^(?P<time>\S+) client=(?P<client>\S+) bytes=(?P<bytes>\S+) latency=(?P<latency>\S+) "
    r"status=(?P<error>ERROR)?\S* queue=(?P<queue>\S+) ratio=(?P<ratio>\S+) file=(?P<name>\S+)"
)


def test_the_regex_format_makes_columns_of_named_groups(tmp_path: Path) -> None:
    path = write(tmp_path / "pxatx" / "tx_other.log", REGEX_LINES)
    items, _ = read(path, format="regex", pattern=PATTERN, time_format="%Y-%m-%dT%H:%M:%S.%f%z")
    got = by_file(items)[str(path)]
    c = got["columns"]
    assert c.names == ("time", "client", "bytes", "latency", "error", "queue", "ratio", "name",
                       "line", "machine", "direction")  # fmt: skip
    assert c["time"].tolist() == [1795929876616, 1795929877002 + 5 * 3600_000]
    assert c["client"].tolist() == ["cmc", "nws"]  # from the lines, not the file name
    assert c["machine"].tolist() == ["pxatx"] * 2 and c["direction"].tolist() == ["tx"] * 2
    assert c["bytes"].dtype == np.int64 and c["bytes"].tolist() == [130, 7]
    assert c["latency"].tolist() == [1.5, 0.25] and c["error"].tolist() == [0, 1]
    assert c["error"].dtype == np.int8
    assert c["queue"].dtype == np.int64 and c["ratio"].dtype == np.float64
    assert c["name"].tolist() == [b"a.grib2", b"b.grib2"] and c["line"].tolist() == [1, 2]
    reasons = {r["line"]: r["reason"] for r in got["rejects"]}
    assert list(reasons) == [3, 4, 5]
    assert reasons[3].startswith("the line does not match the pattern")
    assert reasons[4] == (
        "the time '2026-11-29T99:24:37.002+0000' does not match time_format "
        "'%Y-%m-%dT%H:%M:%S.%f%z'"
    )
    assert reasons[5] == "the byte count '7x' is not a whole number"
    assert got["note"]["rejected"] == 3 and got["note"]["kept"] == 2


def test_the_regex_format_reads_local_times_and_files_of_any_name(tmp_path: Path) -> None:
    path = write(tmp_path / "transfers.txt", [
        b"2026-11-01 01:30:00,000 sent x",
        b"2026-11-01 01:10:00,000 sent y",  # the hour again, in EST
        b"2026-11-01 02:00:00,000 sent 5",
    ])  # fmt: skip
    items, _ = read(tmp_path, format="regex", pattern=r"(?P<time>.{23}) sent (?P<what>\w+)")
    c = by_file(items)[str(path)]["columns"]
    assert c["time"].tolist() == [utc_ms(2026, 11, 1, 5, 30), utc_ms(2026, 11, 1, 6, 10),
                                  utc_ms(2026, 11, 1, 7)]  # fmt: skip
    assert c["what"].tolist() == ["x", "y", "5"]  # not all numbers: text
    assert c["client"].tolist() == [""] * 3  # the name does not say


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"format": "regex", "pattern": r"(?P<when>\S+)"}, "has no (?P<time>...) group"),
        ({"format": "regex", "pattern": r"(?P<time>[\d"}, "is not a valid regular expression"),
        ({"format": "regex"}, "pattern: format: regex needs a pattern"),
        ({"format": "regex", "pattern": r"(?P<time>\S+) (?P<line>\d+)"}, "named 'line'"),
        ({"pattern": r"(?P<time>\S+)"}, "only used with format: regex"),
        ({"format": "json"}, "format: 'json' is not one of metpx, regex"),
        ({"tz": "Mars/Olympus"}, "tz: 'Mars/Olympus' is not a time zone"),
        ({"chunk_mib": 0}, "chunk_mib: 0 must be more than 0"),
    ],
)
def test_parameters_that_cannot_work_are_refused_before_reading(
    logs: Path, params: dict[str, Any], message: str
) -> None:
    with pytest.raises(LogsError, match=re.escape(message)):
        read(logs, **params)


def test_a_path_that_is_not_a_log(tmp_path: Path) -> None:
    other = write(tmp_path / "transfers.txt", [b"x"])
    with pytest.raises(LogsError, match="is not named as a MetPX log"):
        read(other)
    with pytest.raises(LogsError, match="does not exist"):
        read(tmp_path / "missing")
