"""Base directories: by rules (regex and depth, mdtN one deeper) or by a basedirs file,
matched by whole path components."""

from __future__ import annotations

import base64
import gzip
import re
from pathlib import Path

import numpy as np
import pytest

from stages.wrstat import layout as K
from stages.wrstat.basedirs import BaseDirError, Listed, Rules
from stages.wrstat.tally import Tally
from stages.wrstat.usage import base_dirs
from tests.conftest import REPO, run_topology


@pytest.mark.parametrize(
    ("prefix", "depth"),
    [
        (b"/lustre/scratch123/humgen/projects/p1", 5),
        (b"/lustre/scratch123/hgi/teams/t", 5),
        (b"/lustre/scratch123/humgenx/projects/p1", 4),  # whole components only
        (b"/lustre/scratch123/team/a/b", 4),
        (b"/lustre/scratch123/realdata/mdt2/x", 5),  # an mdtN component adds one
        (b"/lustre/scratch123/humgen/mdt0/a/b", 6),
        (b"/nfs/users/x", 4),
    ],
)
def test_default_rules(prefix: bytes, depth: int) -> None:
    assert Rules().depth(prefix) == depth


def test_rules_are_configurable() -> None:
    rules = base_dirs({"rules": [{"match": "^/data/", "depth": 2}], "mdt": None}, None)
    assert isinstance(rules, Rules)
    assert rules.depth(b"/data/a/b") == 2
    assert rules.depth(b"/other/a") == -1  # outside every base directory


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"rules": []}, "basedirs rules are empty"),
        ({"rules": [{"match": "(", "depth": 3}]}, "is not a valid regex"),
        ({"rules": [{"match": "x", "depth": 0}]}, "depth must be a whole number from 1 to 24"),
        ({"rules": [{"match": "x"}]}, "must be {match: REGEX, depth: N}"),
        ({"mdt": "["}, "basedirs mdt: '[' is not a valid regex"),
        ({"rule": []}, "unknown basedirs setting(s) ['rule']"),
    ],
)
def test_bad_rules_say_what_is_wrong(settings: dict[str, object], message: str) -> None:
    with pytest.raises(BaseDirError, match=re.escape(message)):
        base_dirs(settings, None)


def test_a_basedirs_file_with_a_bad_line_names_it(tmp_path: Path) -> None:
    path = tmp_path / "basedirs"
    path.write_text("1000\t/lustre/scratch1/p1\n\nabc /lustre\n")
    with pytest.raises(BaseDirError, match=f"{path}:3: expected 'gid<TAB>/absolute/path'"):
        Listed.read(path)


def line(path: bytes, size: int, gid: int, kind: bytes = b"f") -> bytes:
    return base64.b64encode(path) + b"\t%d\t1\t%d\t1\t1\t1\t%s\t1\t1\t1" % (size, gid, kind)


def test_listed_base_directories_match_whole_components_and_their_gid() -> None:
    listed = Listed([(1, b"/v/p1"), (1, b"/v/p1/sub/"), (2, b"/v/p10")])
    tally = Tally(listed)
    data = b"".join(x + b"\n" for x in [
        line(b"/v/p1", 1, 1, b"d"),          # the base directory itself
        line(b"/v/p1/a", 10, 1),
        line(b"/v/p10/a", 100, 1),           # /p10 is not under /p1; gid 1 is not p10's
        line(b"/v/p10/b", 1000, 2),
        line(b"/v/p1/sub/deeper/c", 10000, 1),  # the longest listed path wins
        line(b"/v/p1/a", 100000, 2),         # gid 2 has no base directory here
    ])  # fmt: skip
    assert tally.add(np.frombuffer(data, dtype=np.uint8), K.BASE64, 11, 5, "f", 1) == []
    d = tally.partial()["dirs"]
    got = {
        (b, gid): int(u)
        for b, gid, u in zip(d["base"].tolist(), d["gid"].tolist(), d["usage"].tolist(),
                             strict=True)
    }  # fmt: skip
    assert got == {
        (b"/v/p1", 1): 11,
        (None, 1): 100,
        (b"/v/p10", 2): 1000,
        (b"/v/p1/sub", 1): 10000,
        (None, 2): 100000,
    }


def test_the_default_topology_takes_a_basedirs_file(tmp_path: Path, run_dir: Path) -> None:
    stats = tmp_path / "in" / "20261101_vol.a.b.stats.gz"
    stats.parent.mkdir()
    rows = [line(b"/lustre/vol/p1/x", 5, 7), line(b"/lustre/vol/p10/x", 6, 7)]
    stats.write_bytes(gzip.compress(b"\n".join(rows) + b"\n"))
    listing = tmp_path / "basedirs"
    listing.write_text("7\t/lustre/vol/p1\n")
    out = tmp_path / "reports"
    report = run_topology((REPO / "topology.yaml").read_text(), run_dir,
                          WRSTAT_DIR=str(stats.parent), REPORT_DIR=str(out),
                          BASEDIRS_FILE=str(listing))  # fmt: skip
    assert report.ok, report.errors
    rows_out = (out / "group-20261101.tsv").read_text().splitlines()[1:]
    assert [(r.split("\t")[1], r.split("\t")[5]) for r in rows_out] == [
        ("/lustre/vol (outside any base directory)", "6"),
        ("/lustre/vol/p1", "5"),
    ]
