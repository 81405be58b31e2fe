"""``pipeline diff`` end to end: real processes, the reference diff as the oracle."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.errors import ExitCode
from tests.conftest import cli
from tests.stages.diff import oracle
from tests.stages.diff.pairs import SCENARIO_COUNTS, scenario, write
from tests.stages.wrstat.conftest import generate

pytestmark = pytest.mark.integration


def listed(folder: Path, kind: str) -> set[tuple[str, ...]]:
    lines = (folder / f"{kind}.tsv").read_text().splitlines()
    assert lines[0].startswith("Path\tOld Path\t")
    rows = [tuple(x.split("\t")) for x in lines[1:]]
    assert len(rows) == len(set(rows)), f"{kind}: a row written twice"
    return set(rows)


def check_against_oracle(old: Path, new: Path, out: Path) -> dict[str, int]:
    """Every list as the reference diff has it; returns the report's counts."""
    ref = oracle.diff(old, new)
    want = oracle.list_rows(ref)
    for kind in ("created", "deleted", "modified", "moved"):
        assert listed(out, kind) == want[kind], kind
    report = json.loads((out / "report.json").read_text())
    counts = report["files"]["counts"]
    assert counts["unchanged"] == ref.unchanged
    groups = {
        row["gid"]: [
            row[k]
            for k in (
                "created",
                "created_bytes",
                "deleted",
                "deleted_bytes",
                "modified",
                "grown_bytes",
                "moved",
            )
        ]
        for row in report["files"]["groups"]
    }
    assert groups == oracle.group_figures(ref)
    return dict(counts)


def test_a_hand_written_pair_with_every_kind_of_change(tmp_path: Path) -> None:
    old, new = scenario(tmp_path / "in")
    out = tmp_path / "out"
    ran = cli("diff", str(old), str(new), "--out", str(out), "--replicas", "3", cwd=tmp_path)
    assert ran.returncode == ExitCode.OK, ran.stderr
    counts = check_against_oracle(old, new, out)
    assert counts == SCENARIO_COUNTS
    rejects = (out / "rejects.tsv").read_text().splitlines()
    assert [r.split("\t")[1] for r in rejects[1:]] == ["12", "13"]
    assert "3 created, 3 deleted, 2 modified, 2 moved, 5 unchanged; 2 rejected" in ran.stderr
    largest = (out / "largest-created.tsv").read_text().splitlines()
    assert [r.split("\t")[:2] for r in largest[1:]] == [
        ["/v/y", "400"],
        ["/v/new", "300"],
        ["/v/link", "20"],
    ]
    # the aggregate diff: /v and everything in it is outside any base directory
    agg = {
        tuple(r.split("\t")[:2]): r.split("\t")[2:]
        for r in (out / "aggregate-groups.tsv").read_text().splitlines()[1:]
    }
    outside = "/scratch1 (outside any base directory)"  # the mount, as the reports name it
    assert set(agg) == {("1", outside), ("2", outside)}
    # gid 2: /v/touch (100), /v/gone (500) and /v/other-dev (5) before; touch and /v/new after
    assert agg[("2", outside)][:7] == ["605", "400", "3", "2", "-205", "-33.88", "changed"]


def test_saved_snapshots_and_reports_read_back(tmp_path: Path) -> None:
    old, new = scenario(tmp_path / "in")
    out = tmp_path / "out"
    ran = cli("diff", str(old), str(new), "--out", str(out), "--snapshots", cwd=tmp_path)
    assert ran.returncode == ExitCode.OK, ran.stderr
    snaps = sorted(out.glob("*.snap"))
    assert [s.name for s in snaps] == ["scratch1@20261101.snap", "scratch1@20261102.snap"]
    again = tmp_path / "again"
    ran = cli("diff", str(snaps[0]), str(snaps[1]), "--out", str(again), cwd=tmp_path)
    assert ran.returncode == ExitCode.OK, ran.stderr
    for name in ("aggregate-groups.tsv", "aggregate-users.tsv"):
        assert (again / name).read_text() == (out / name).read_text()
    first = json.loads((out / "report.json").read_text())
    shown = cli("diff", "--show", str(out / "report.rpt"), cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout) == first
    from_snaps = json.loads((again / "report.json").read_text())
    assert from_snaps["id"] == first["id"] == "scratch1@20261101 vs scratch1@20261102"
    assert from_snaps["aggregate"] == first["aggregate"]


def test_inputs_it_cannot_use_are_refused_with_what_to_do(tmp_path: Path) -> None:
    old, new = scenario(tmp_path / "in")
    ran = cli("diff", str(old), str(tmp_path / "nothing"), cwd=tmp_path)
    assert ran.returncode == ExitCode.USAGE
    assert "nothing is not a file; give two stats files or two .snap files" in ran.stderr
    out = tmp_path / "out"
    assert (
        cli("diff", str(old), str(new), "--out", str(out), "--snapshots", cwd=tmp_path).returncode
        == 0
    )
    snap = next(out.glob("*.snap"))
    ran = cli("diff", str(snap), str(new), cwd=tmp_path)
    assert ran.returncode == ExitCode.USAGE
    assert "not one of each" in ran.stderr
    broken = tmp_path / "broken.snap"
    data = bytearray(snap.read_bytes())
    data[-3] ^= 0xFF
    broken.write_bytes(bytes(data))
    ran = cli("diff", str(broken), str(snap), cwd=tmp_path)
    assert ran.returncode == ExitCode.USAGE
    assert "broken.snap" in ran.stderr and "corrupt" in ran.stderr


def test_a_file_cut_short_is_compared_as_far_as_it_goes_and_the_run_says_so(
    tmp_path: Path,
) -> None:
    rows = [(b"/v/f%06d" % i, "f", i, 1000, 10 + i, 1, 100, 1) for i in range(20000)]
    old = write(tmp_path / "in" / "20261101_v.a.b.stats.gz", list(rows))
    whole = write(tmp_path / "whole" / "20261102_v.a.b.stats.gz", list(rows[:-1]))
    new = tmp_path / "in" / "20261102_v.a.b.stats.gz"
    new.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    out = tmp_path / "out"
    ran = cli("diff", str(old), str(new), "--out", str(out), cwd=tmp_path)
    assert ran.returncode == ExitCode.INCOMPLETE_INPUT, ran.stderr
    assert "the gzip stream is truncated" in ran.stderr
    report = json.loads((out / "report.json").read_text())
    counts = report["files"]["counts"]
    rejected = (out / "rejects.tsv").read_text().splitlines()[1:]
    assert [r.split("\t")[2] for r in rejected] == ["the file ends in the middle of this line"]
    # every old line is accounted for: the new file's missing lines show as deleted
    assert counts["unchanged"] + counts["deleted"] == 20000
    assert counts["new_entries"] == counts["unchanged"] < 19999


def test_generated_snapshots_with_churn_match_the_reference_diff(tmp_path: Path) -> None:
    """Files created, deleted, grown, touched, moved, retyped and hard links renamed, over
    four replicas: the same lists and figures as the plain reference diff."""
    data = tmp_path / "in"
    generate(data, 6000, "scratch123=v6.4", date="20261102", history=1, churn=0.05)
    old, new = sorted(data.glob("*/stats.gz"))
    out = tmp_path / "out"
    ran = cli("diff", str(old), str(new), "--out", str(out), "--replicas", "4", cwd=tmp_path)
    assert ran.returncode == ExitCode.OK, ran.stderr
    counts = check_against_oracle(old, new, out)
    assert all(counts[k] > 0 for k in ("created", "deleted", "modified", "moved")), counts


def test_two_volumes_are_not_two_snapshots(tmp_path: Path) -> None:
    old, _ = scenario(tmp_path / "in")
    other = write(
        tmp_path / "in" / "20261102_scratch2.a.b.stats.gz", [(b"/v", "d", 1, 1, 1, 1, 1, 1)]
    )
    ran = cli("diff", str(old), str(other), cwd=tmp_path)
    assert ran.returncode == ExitCode.USAGE
    assert "are of different volumes (scratch1, scratch2)" in ran.stderr
