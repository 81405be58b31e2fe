"""``pipeline gen wrstat``: sample files in every era and naming, with what real ones hold."""

from __future__ import annotations

import argparse
import gzip
import itertools
import os
import signal
from collections import Counter
from pathlib import Path
from typing import NamedTuple

import pytest

from pipeline.errors import ExitCode, UsageError
from stages.wrstat.gen import add_generator
from tests.conftest import cli, start_cli
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


# ``--churn``: an older snapshot that differs from the newest as a day of real use would

CHURN = 0.05
#: each of the five ways an entry can change takes a fifth of the churn
SHARE = CHURN / 5
CHURN_ARGS = ["--lines", "4000", "--date", "20261101", "--history", "1", "--seed", "5"]


class Row(NamedTuple):
    ident: tuple[int, int]  # (dev, inode): what a file-level diff matches entries by
    path: bytes
    type: str
    size: int
    mtime: int
    nlink: int


def _rows(path: Path) -> list[Row]:
    """Every line of a stats file, each checked by the oracle."""
    lines = gzip.decompress(path.read_bytes()).split(b"\n")
    assert lines.pop() == b""
    encoding, ncols = encoding_of(lines[0]), lines[0].count(b"\t") + 1
    rows = []
    for raw in lines:
        try:
            e = parse_line(raw, encoding, ncols)
        except Bad:  # pragma: no cover - the message names the line
            pytest.fail(f"{path}: line not valid: {raw!r}")
        fields = raw.split(b"\t")
        rows.append(Row((int(fields[10]), int(fields[8])), e.path.rstrip(b"/"), e.type, e.size,
                        e.mtime, e.nlink))  # fmt: skip
    return rows


def _by_volume(folder: Path) -> dict[str, dict[int, Path]]:
    """Each volume's stats files by snapshot time, newest first."""
    found: dict[str, dict[int, Path]] = {}
    for path in [*folder.glob("*.stats.gz"), *folder.glob("*/stats.gz")]:
        volume, snapshot = snapshot_of(path)
        found.setdefault(volume, {})[snapshot] = path
    return {v: dict(sorted(s.items(), reverse=True)) for v, s in sorted(found.items())}


@pytest.fixture(scope="module")
def churned(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The same five volumes with the day before each: without ``--churn``, with ``--churn 0``
    and with churn, written side by side."""
    runs = {"without": [], "zero": ["--churn", "0"], "churned": ["--churn", str(CHURN)]}
    folders = {name: tmp_path_factory.mktemp(name) for name in runs}
    procs = {name: start_cli("gen", "wrstat", str(folders[name]), *CHURN_ARGS, *extra)
             for name, extra in runs.items()}  # fmt: skip
    try:
        for proc in procs.values():
            _, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, err
    finally:
        for proc in procs.values():
            if proc.poll() is None:  # pragma: no cover - only when one failed or hung
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    return folders


@pytest.fixture(scope="module")
def churned_rows(churned: dict[str, Path]) -> dict[str, tuple[list[Row], list[Row]]]:
    """Each volume's newest snapshot and the one before, read once for the tests below."""
    pairs = {}
    for volume, snapshots in _by_volume(churned["churned"]).items():
        newest, older = (_rows(p) for p in snapshots.values())
        pairs[volume] = newest, older
    return pairs


def test_churn_leaves_the_newest_snapshot_as_it_was(churned: dict[str, Path]) -> None:
    plain, changed = _by_volume(churned["without"]), _by_volume(churned["churned"])
    assert plain.keys() == changed.keys() and len(plain) == 5
    for volume, snapshots in plain.items():
        (newest, older), (newest_churned, older_churned) = (
            snapshots.values(),
            changed[volume].values(),
        )
        assert _content(newest) == _content(newest_churned)
        assert _content(older) != _content(older_churned)
    for name in ("identities.tsv", "quotas.csv"):
        assert _content(churned["without"] / name) == _content(churned["churned"] / name)


def test_churn_0_writes_what_no_churn_writes(churned: dict[str, Path]) -> None:
    files = sorted(p for p in churned["without"].rglob("*") if p.is_file())
    assert len(files) == 12
    for path in files:
        twin = churned["zero"] / path.relative_to(churned["without"])
        assert _content(path) == _content(twin), path


def _content(path: Path) -> bytes:
    """What a file holds (a gzip header holds the time it was written: not that)."""
    data = path.read_bytes()
    return gzip.decompress(data) if path.name.endswith(".gz") else data


def test_churn_makes_every_kind_of_change_a_diff_finds(
    churned_rows: dict[str, tuple[list[Row], list[Row]]],
) -> None:
    found: Counter[str] = Counter()
    expected: Counter[str] = Counter()
    for newest, older in churned_rows.values():
        new: dict[tuple[int, int], list[Row]] = {}
        old: dict[tuple[int, int], list[Row]] = {}
        for rows, names in ((newest, new), (older, old)):
            for row in rows:
                names.setdefault(row.ident, []).append(row)
        for ident in new.keys() - old.keys():
            found["created"] += 1
            assert new[ident][0].type in ("f", "l"), new[ident]
        for ident in old.keys() - new.keys():
            found["deleted"] += 1
            assert ident[1] >= 2**40 and old[ident][0].type == "f", old[ident]
        for ident in new.keys() & old.keys():
            was, now = old[ident], new[ident]
            if was[0].type != now[0].type:
                found["type changed"] += 1
                assert {was[0].type, now[0].type} == {"f", "l"}
            elif sorted(r.path for r in was) != sorted(r.path for r in now):
                found["moved"] += 1
                found["hard link moved"] += now[0].nlink == 2
            elif was[0].size == now[0].size and was[0].mtime < now[0].mtime:
                found["touched"] += 1
                assert now[0].mtime - was[0].mtime >= 86400
            else:  # not changed: grown (or the same size), with the same times
                assert was[0].mtime == now[0].mtime and was[0].size <= now[0].size, (was, now)
        # what each way applies to, in the newest snapshot (a few entries, the volume's root
        # and the directories down to the base directories, never change)
        firsts = [ns[0] for ns in new.values()]
        expected["created"] += sum(r.type in ("f", "l") for r in firsts)
        expected["deleted"] += len(newest)
        expected["moved"] += sum(r.type != "d" for r in newest)
        expected["touched"] += len(firsts)
        expected["type changed"] += sum(r.type in ("f", "l") and r.nlink == 1 for r in firsts)
    for way, count in expected.items():
        assert 0.7 < found[way] / (count * SHARE) < 1.3, (way, found[way], count * SHARE)
    assert found["hard link moved"] > 0


def test_older_snapshots_with_churn_are_valid_wrstat_files(
    churned_rows: dict[str, tuple[list[Row], list[Row]]],
) -> None:
    # every line parsed (the fixture's reading checks each against the oracle)
    for newest, older in churned_rows.values():
        names: dict[tuple[int, int], list[Row]] = {}
        for row in older:
            names.setdefault(row.ident, []).append(row)
        for rows in names.values():
            # one line per name: two for a hard-linked file, one for a directory (nlink 2)
            first = rows[0]
            assert len(rows) == (1 if first.type == "d" else max(1, first.nlink)), rows
            # and every name of an inode says the same of it
            assert len({(r.type, r.size, r.mtime, r.nlink) for r in rows}) == 1, rows
        # the walk is the newest's: what both hold comes in the same order, and each file
        # deleted since comes right after the entry it was beside (or in)
        kept = {r.ident for r in newest}
        assert [r.ident for r in older if r.ident in kept] == [
            r.ident for r in newest if r.ident in names
        ]
        for before, row in itertools.pairwise(older):
            if row.ident not in kept:
                assert row.path.startswith(before.path)


def _gen_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pipeline gen")
    add_generator(parser.add_subparsers())
    return parser


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0.3", "argument --churn: 0.3 is out of range: give a share of the entries from 0 to 0.2"),
        ("-0.1", "argument --churn: -0.1 is out of range"),
        ("nan", "argument --churn: nan is out of range"),
        ("2%", "argument --churn: '2%' is not a number: give a share of the entries, e.g. 0.02"),
    ],
)
def test_churn_out_of_range_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], value: str, message: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        _gen_parser().parse_args(["wrstat", "out", "--history", "1", "--churn", value])
    assert exited.value.code == ExitCode.USAGE
    assert message in capsys.readouterr().err


def test_churn_without_older_snapshots_is_a_usage_error(tmp_path: Path) -> None:
    args = _gen_parser().parse_args(["wrstat", str(tmp_path / "out"), "--churn", "0.1"])
    with pytest.raises(UsageError, match=r"--churn 0.1 .* --history 0 writes none: add --hist"):
        args.handler(args)
    assert not list(tmp_path.iterdir())
