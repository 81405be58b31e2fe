"""The pipeline's reports equal a plain line-by-line reference, for every wrstat era, with one
replica and with several."""

from __future__ import annotations

from pathlib import Path

import pytest

from stages.wrstat.escape import go_escape
from stages.wrstat.naming import discover
from stages.wrstat.report import outside
from tests.conftest import REPO, run_topology
from tests.stages.wrstat.conftest import read_jsonl
from tests.stages.wrstat.oracle import AGE_MONTHS, days, reference

pytestmark = pytest.mark.integration


def run(sample: Path, reports: Path, run_dir: Path, replicas: int) -> None:
    text = (REPO / "topology.yaml").read_text()
    report = run_topology(text, run_dir, WRSTAT_DIR=str(sample), REPORT_DIR=str(reports),
                          USAGE_REPLICAS=str(replicas))  # fmt: skip
    assert report.ok, report.errors


@pytest.mark.parametrize("replicas", [1, 3])
def test_reports_equal_the_reference(
    sample: Path, tmp_path: Path, run_dir: Path, replicas: int
) -> None:
    reports = tmp_path / "reports"
    run(sample, reports, run_dir, replicas)
    files = [s.path for s in discover(sample)]
    assert len(files) == 5  # the newest of each volume, older snapshots left out
    ref = reference(files)
    mounts = {v: f"/lustre/{v}" for v in ref.snapshots}

    def top(vol: str, base: bytes | None) -> str:
        return outside(mounts[vol]) if base is None else go_escape(base)

    groups = {
        (r["volume"], r["top_level_path"], r["gid"]): (
            r["usage"],
            r["files"],
            r["last_modified_days"],
        )
        for r in read_jsonl(reports / "group-20261101.jsonl")
    }
    expected = {
        (v, top(v, b), g): (u, f, days(ref.snapshots[v], n))
        for (v, g, b), (u, f, n) in ref.groups.items()
    }
    assert groups == expected
    users = {(r["volume"], r["uid"], r["gid"]): (r["usage"], r["files"], r["last_modified_days"])
             for r in read_jsonl(reports / "user-20261101.jsonl")}  # fmt: skip
    assert users == {k: (u, f, days(ref.snapshots[k[0]], n)) for k, (u, f, n) in ref.users.items()}
    dirs = {(r["volume"], r["top_level_path"], r["directory"], r["gid"]):
            (r["usage"], r["files"], r["last_modified_days"], *list(r.values())[8:])
            for r in read_jsonl(reports / "directory-20261101.jsonl")}  # fmt: skip
    assert dirs == {(v, top(v, b), go_escape(s), g): (u, f, days(ref.snapshots[v], n), *t)
                    for (v, g, b, s), (u, f, n, *t) in ref.dirs.items()}  # fmt: skip
    ages = {}
    for r in read_jsonl(reports / "ages-20261101.jsonl"):
        cells = list(r.values())[4:]
        for k, name in enumerate(AGE_MONTHS):
            if cells[k] or cells[k + len(AGE_MONTHS)]:
                ages[(r["volume"], r["gid"], r["by"], name)] = [
                    cells[k],
                    cells[k + len(AGE_MONTHS)],
                ]
    assert ages == {(v, g, by, name): cell for (v, g), profile in ref.ages.items()
                    for (by, name), cell in profile.items() if cell != [0, 0]}  # fmt: skip
    classes = {name for (_, _, _, name) in ages}
    assert classes == set(AGE_MONTHS), "the sample should have data of every age class"
    rejects = (reports / "rejects-20261101.tsv").read_text().splitlines()[1:]
    assert sorted((r.split("\t")[0], int(r.split("\t")[1])) for r in rejects) == sorted(ref.rejects)
