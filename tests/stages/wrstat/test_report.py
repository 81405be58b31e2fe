"""The reports: one set per snapshot date, TSV and JSON lines alike, written atomically."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.errors import ExitCode
from tests.conftest import REPO, cli, run_topology
from tests.stages.wrstat.conftest import generate, read_jsonl

pytestmark = pytest.mark.integration


def test_each_snapshot_date_gets_its_own_set(tmp_path: Path, run_dir: Path) -> None:
    generate(tmp_path / "in", 1500, "scratch1=v3", date="20261101")
    generate(tmp_path / "in", 1500, "scratch2=v6.4", date="20261108")
    out = tmp_path / "reports"
    report = run_topology((REPO / "topology.yaml").read_text(), run_dir,
                          WRSTAT_DIR=str(tmp_path / "in"), REPORT_DIR=str(out))  # fmt: skip
    assert report.ok, report.errors
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(
        [
            *(
                f"{kind}-{date}.{ext}"
                for date in ("20261101", "20261108")
                for kind, ext in [
                    ("group", "tsv"),
                    ("group", "jsonl"),
                    ("user", "tsv"),
                    ("user", "jsonl"),
                    ("directory", "tsv"),
                    ("directory", "jsonl"),
                    ("ages", "tsv"),
                    ("ages", "jsonl"),
                    ("rejects", "tsv"),
                ]
            ),
            "history.sqlite",  # the history, and the quotas nobody knew (no lfs here)
            "quota-unknown-20261108.tsv",
            "ages-scratch2-20261108.png",  # the newest date's picture of usage by age
        ]
    )  # fmt: skip  (and no temporary files are left behind)
    assert {r["volume"] for r in read_jsonl(out / "group-20261101.jsonl")} == {"scratch1"}
    assert {r["volume"] for r in read_jsonl(out / "group-20261108.jsonl")} == {"scratch2"}
    assert {r["volume"] for r in read_jsonl(out / "ages-20261108.jsonl")} == {"scratch2"}


def test_tsv_and_json_lines_hold_the_same_rows(tmp_path: Path, run_dir: Path) -> None:
    generate(tmp_path / "in", 3000, "scratch7=v6.2", date="20261101")
    out = tmp_path / "reports"
    report = run_topology((REPO / "topology.yaml").read_text(), run_dir,
                          WRSTAT_DIR=str(tmp_path / "in"), REPORT_DIR=str(out))  # fmt: skip
    assert report.ok, report.errors
    tsv = (out / "group-20261101.tsv").read_text().splitlines()
    assert tsv[0].split("\t") == [
        "Volume", "Top Level Path", "PI", "Group", "GID", "Usage (bytes)", "Quota (bytes)",
        "Last Modified (days)", "Files", "Warning", "Days Until Full",
    ]  # fmt: skip
    rows = read_jsonl(out / "group-20261101.jsonl")
    assert len(rows) == len(tsv) - 1 > 3
    for line, row in zip(tsv[1:], rows, strict=True):
        cells = line.split("\t")
        assert cells[0] == row["volume"] and cells[1] == row["top_level_path"]
        assert int(cells[4]) == row["gid"] and int(cells[5]) == row["usage"]
        assert float(cells[7]) == row["last_modified_days"] and int(cells[8]) == row["files"]
        assert cells[2] == cells[6] == cells[9] == cells[10] == "-"  # no PI, quota or forecast
        assert row["pi"] is None and row["quota"] is None and row["warning"] is None
        assert row["days_until_full"] is None
    keys = [(r[0], r[1], int(r[4])) for r in (x.split("\t") for x in tsv[1:])]
    assert keys == sorted(keys)  # by volume, top level path, gid
    users = (out / "user-20261101.tsv").read_text().splitlines()
    assert users[0].split("\t") == ["Volume", "User", "UID", "Group", "GID", "Usage (bytes)",
                                    "Files", "Last Modified (days)"]  # fmt: skip
    dirs = (out / "directory-20261101.tsv").read_text().splitlines()
    assert dirs[0].split("\t")[8:] == [
        "bam", "cram", "sam", "vcf", "vcf.gz", "fastq", "fastq.gz", "bed/ped", "other"
    ]  # fmt: skip
    # per gid, the group report adds up to the directory report
    by_gid: dict[int, int] = {}
    for r in read_jsonl(out / "directory-20261101.jsonl"):
        by_gid[r["gid"]] = by_gid.get(r["gid"], 0) + r["usage"]
    for r in rows:
        by_gid[r["gid"]] -= r["usage"]
    assert set(by_gid.values()) == {0}


def test_the_main_command_runs_on_sample_data_with_no_settings(tmp_path: Path) -> None:
    """What the README's first command does, in an empty folder."""
    gen = cli("gen", "wrstat", "sample-data/wrstat", "--lines", "2000", cwd=tmp_path)
    assert gen.returncode == 0, gen.stderr
    (tmp_path / "topology.yaml").write_text((REPO / "topology.yaml").read_text())
    proc = cli("run", cwd=tmp_path)
    assert proc.returncode == ExitCode.OK, proc.stderr
    groups = list((tmp_path / "reports").glob("group-*.tsv"))
    assert len(groups) == 1 and len(groups[0].read_text().splitlines()) > 5
    summary = json.loads((tmp_path / ".pipeline" / "wrstat" / "summary.json").read_text())
    read = summary["stages"]["read"]
    sizes = sum(p.stat().st_size for p in (tmp_path / "sample-data" / "wrstat").rglob("*.gz"))
    assert read["progress_done"] == read["progress_total"] == sizes
