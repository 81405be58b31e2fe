"""Matching entries by identity, in one process: every rule on a hand-written pair."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline import Columns
from stages.diff.entries import NEW, OLD, concat, entries, path_hash
from stages.diff.filediff import list_and_count
from stages.diff.listing import chunks
from stages.diff.match import CREATED, DELETED, MODIFIED, MOVED, match_sides, per_group
from stages.wrstat.parse import parse
from tests.stages.diff import oracle
from tests.stages.diff.pairs import SCENARIO_COUNTS, scenario


def side_of(path: Path, side: int) -> Columns:
    parts = []
    for item in chunks(path, chunk_mib=0.0001):  # many small chunks
        if item["kind"] == "chunk":
            parsed = parse(item["data"], item["encoding"], item["ncols"])  # type: ignore[arg-type]
            parts.append(entries(parsed, item["line"], side))  # type: ignore[arg-type]
    return concat(parts)


def paths_of(m, idx: np.ndarray, rows: dict[int, bytes]) -> list[bytes]:  # type: ignore[no-untyped-def]
    return [rows[int(line)] for line in m.rows["line"][idx]]


def test_every_rule_on_a_hand_written_pair(tmp_path: Path) -> None:
    old_file, new_file = scenario(tmp_path)
    m = match_sides(side_of(old_file, OLD), side_of(new_file, NEW))
    assert m.counts() == SCENARIO_COUNTS
    old_lines = {
        1: b"/v",
        5: b"/v/gone",
        6: b"/v/old-name",
        8: b"/v/hl-b",
        9: b"/v/link",
        11: b"/v/other-dev",
    }
    new_lines = {
        3: b"/v/grow",
        4: b"/v/touch",
        5: b"/v/new",
        6: b"/v/new-name",
        8: b"/v/hl-c",
        9: b"/v/link",
        12: b"/v/y",
    }
    assert paths_of(m, m.of(CREATED, NEW), new_lines) == [b"/v/new", b"/v/link", b"/v/y"]
    assert paths_of(m, m.of(DELETED, OLD), old_lines) == [b"/v/gone", b"/v/link", b"/v/other-dev"]
    assert paths_of(m, m.of(MODIFIED, NEW), new_lines) == [b"/v/grow", b"/v/touch"]
    moved = m.of(MOVED, NEW)
    assert paths_of(m, moved, new_lines) == [b"/v/new-name", b"/v/hl-c"]
    assert paths_of(m, m.other[moved], old_lines) == [b"/v/old-name", b"/v/hl-b"]


def test_per_group_figures_count_bytes_as_the_usage_reports_do(tmp_path: Path) -> None:
    old_file, new_file = scenario(tmp_path)
    m = match_sides(side_of(old_file, OLD), side_of(new_file, NEW))
    g = per_group(m)
    got = {
        gid: [int(g[n][k]) for n in g.names if n != "gid"]
        for k, gid in enumerate(g["gid"].tolist())
    }
    # gid 1: created the new file-type link (20) and /v/y, a second link of a 400-byte file
    # (400 // 2); deleted the symlink (10); /v/grow grew by 50
    assert got == {1: [2, 220, 1, 10, 1, 50, 2], 2: [1, 300, 2, 505, 1, 0, 0]}
    assert got == oracle.group_figures(oracle.diff(old_file, new_file))


def test_lists_and_the_largest_files_created(tmp_path: Path) -> None:
    old_file, new_file = scenario(tmp_path)
    m = match_sides(side_of(old_file, OLD), side_of(new_file, NEW))
    written, found = list_and_count(m, old_file, new_file, tmp_path, 2)
    want = oracle.list_rows(oracle.diff(old_file, new_file))
    for kind, path in written.items():
        lines = path.read_text().splitlines()
        assert lines[0].split("\t")[:2] == ["Path", "Old Path"]
        assert {tuple(x.split("\t")) for x in lines[1:]} == want[kind], kind
        assert len(lines) - 1 == len(want[kind])
    assert found["largest"]["path"].tolist() == ["/v/y", "/v/new"]
    assert found["largest"]["size"].tolist() == [400, 300]


def test_a_directory_matches_across_the_trailing_slash_of_wrstat_6() -> None:
    assert path_hash(b"/v/dir/") == path_hash(b"/v/dir")
    assert path_hash(b"/") != path_hash(b"")
    assert path_hash(b"/v/a") != path_hash(b"/v/b")


def test_many_links_of_one_inode_pair_by_path_then_in_line_order() -> None:
    """A hard-link farm: 300 names of one inode; half kept, 100 renamed, 50 removed."""

    def side(names: list[bytes], s: int) -> Columns:
        n = len(names)
        return Columns(
            side=np.full(n, s, np.uint8),
            line=np.arange(1, n + 1, dtype=np.int64),
            dev=np.full(n, 7, np.uint64),
            inode=np.full(n, 42, np.uint64),
            type=np.full(n, ord("f"), np.uint8),
            size=np.full(n, 10, np.int64),
            mtime=np.full(n, 5, np.int64),
            uid=np.zeros(n, np.uint32),
            gid=np.zeros(n, np.uint32),
            nlink=np.full(n, n, np.uint32),
            phash=np.array([path_hash(p) for p in names], np.uint64),
        )

    old = [b"/l/%d" % i for i in range(300)]
    new = old[:150] + [b"/l/r%d" % i for i in range(100)]
    m = match_sides(side(old, OLD), side(new, NEW))
    c = m.counts()
    assert (c["unchanged"], c["moved"], c["deleted"], c["created"]) == (150, 100, 50, 0)
    moved = m.of(MOVED, NEW)
    # the first old name left over goes with the first new name left over
    assert m.rows["line"][m.other[moved[0]]] == 151 and m.rows["line"][moved[0]] == 151
