"""``pipeline gen wrstat``: sample files in every era and naming, with what real ones hold."""

from __future__ import annotations

import gzip
from collections import Counter
from pathlib import Path

import pytest

from pipeline.errors import ExitCode
from tests.conftest import cli
from tests.stages.wrstat.oracle import Bad, encoding_of, parse_line, snapshot_of

pytestmark = pytest.mark.integration


def test_every_era_and_naming_with_the_awkward_cases(tmp_path: Path) -> None:
    proc = cli("gen", "wrstat", str(tmp_path), "--lines", "3000", "--date", "20261101")
    assert proc.returncode == 0, proc.stderr
    files = sorted(tmp_path.glob("*.stats.gz")) + sorted(tmp_path.glob("*/stats.gz"))
    assert [f.name for f in files] == [
        "20261101_scratch117.a1b2c3.d4e5f6.stats.gz",
        "20261101_scratch118.a1b2c3.d4e5f6.stats.gz",
        "20261101_scratch119.a1b2c3.d4e5f6.stats.gz",
        "stats.gz",
        "stats.gz",
    ]
    assert files[3].parent.name == "20261101-120000_\uff0flustre\uff0fscratch123"
    seen: Counter[str] = Counter()
    for path in files:
        volume, snapshot = snapshot_of(path)
        lines = gzip.decompress(path.read_bytes()).splitlines()
        assert len(lines) >= 3000
        encoding, ncols = encoding_of(lines[0]), lines[0].count(b"\t") + 1
        assert ncols == (12 if volume == "scratch124" else 11)
        inodes: Counter[bytes] = Counter()
        for raw in lines:
            try:
                e = parse_line(raw, encoding, ncols)
            except Bad:  # pragma: no cover - the message names the line
                pytest.fail(f"{path}: line not valid: {raw!r}")
            inodes[raw.split(b"\t")[8]] += 1
            seen["nlink 0"] += e.nlink == 0
            seen["symlink"] += e.type == "l"
            seen["fifo or socket"] += e.type in ("F", "s")
            seen["future mtime"] += e.mtime > snapshot
            seen["tab or newline in a name"] += b"\t" in e.path or b"\n" in e.path
            seen["not utf-8"] += not _is_utf8(e.path)
            seen["quoted escape"] += encoding == "quoted" and b"\\" in raw.split(b"\t")[0]
            seen["directory ending in /"] += e.type == "d" and e.path.endswith(b"/")
        seen["hard link"] += sum(1 for n in inodes.values() if n > 1)
    for what, count in seen.items():
        assert count > 0, f"no {what} in the sample"
    assert len(seen) == 9


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--volumes", "scratch1=v9"], "--volumes: 'scratch1=v9' is not VOLUME=ERA"),
        (["--volumes", "scratch1"], "is not VOLUME=ERA (eras: v3, v5.1, v5.2, v6.2, v6.4)"),
        (["--date", "2026-11-01"], "--date '2026-11-01' is not a date like 20261101"),
    ],
)
def test_bad_options_say_what_to_give(tmp_path: Path, args: list[str], message: str) -> None:
    proc = cli("gen", "wrstat", str(tmp_path), *args)
    assert proc.returncode == ExitCode.USAGE
    assert message in proc.stderr
    assert not list(tmp_path.iterdir())
