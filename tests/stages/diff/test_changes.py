"""The ``changes`` stage of the default topology: each volume against its previous snapshot
in the history, checked against the usage reports of the two dates."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.errors import ExitCode
from tests.conftest import REPO, Ran, cli
from tests.stages.diff.test_cli import check_against_oracle
from tests.stages.wrstat.conftest import generate

pytestmark = pytest.mark.integration

VOLUMES = "scratch117=v3,scratch123=v6.2"


def run(tmp_path: Path, *settings: str) -> Ran:
    args = [f"-e{s}" for s in settings]
    return cli("run", str(REPO / "topology.yaml"), "--progress", "off", *args, cwd=tmp_path,
               timeout=120)  # fmt: skip


def rows(path: Path) -> list[list[str]]:
    return [line.split("\t") for line in path.read_text().splitlines()[1:]]


def expected_group_changes(out: Path, before: str, after: str) -> dict[tuple[str, ...], list[str]]:
    """(volume, path, gid) -> usage before, after, change and status, from the group reports."""
    old = {(r[0], r[1], r[4]): (int(r[5]), int(r[8])) for r in rows(out / f"group-{before}.tsv")}
    new = {(r[0], r[1], r[4]): (int(r[5]), int(r[8])) for r in rows(out / f"group-{after}.tsv")}
    want = {}
    for key in old.keys() | new.keys():
        (ub, fb), (ua, fa) = old.get(key, (0, 0)), new.get(key, (0, 0))
        status = "appeared" if key not in old else "vanished" if key not in new else "changed"
        if (ub, fb) != (ua, fa) or status != "changed":
            want[key] = [str(ub), str(ua), str(ua - ub), str(fb), str(fa), status]
    return want


def test_changes_since_the_previous_snapshot_and_none_on_a_first_run(tmp_path: Path) -> None:
    data, out = tmp_path / "in", tmp_path / "reports"
    generate(data, 2500, VOLUMES, date="20261102", history=1)
    ran = run(tmp_path, f"WRSTAT_DIR={data}", f"REPORT_DIR={out}", "WRSTAT_SNAPSHOTS=all",
              "DIFF_FILES=true")  # fmt: skip
    assert ran.returncode == ExitCode.OK, ran.stderr
    assert ("scratch117, scratch123: no earlier snapshot in the history (SQLite "
            f"{out}/history.sqlite) to compare the one of 20261101 with (a first run); no "
            "changes written for them") in ran.stderr  # fmt: skip
    assert sorted(p.name for p in out.glob("changes-*")) == [
        "changes-20261102.jsonl", "changes-20261102.tsv"]  # fmt: skip
    got = rows(out / "changes-20261102.tsv")
    groups = {(r[0], r[3], r[5]): [r[8], r[9], r[10], r[12], r[13], r[14]]
              for r in got if r[2] == "group"}  # fmt: skip
    assert groups == expected_group_changes(out, "20261101", "20261102")
    assert {r[1] for r in got} == {"2026-11-01"}
    users = [r for r in got if r[2] == "user"]
    assert users and all(r[3] == "-" and r[6] != "-" for r in users)
    as_json = [json.loads(x) for x in (out / "changes-20261102.jsonl").read_text().splitlines()]
    assert [(j["volume"], j["gid"], j["usage_after"]) for j in as_json] == [
        (r[0], int(r[5]), int(r[9])) for r in got]  # fmt: skip
    # the same two snapshots read back from the history by `pipeline diff`
    db = str(out / "history.sqlite")
    kept = tmp_path / "kept"
    shown = cli("diff", "scratch117@20261101", "scratch117@20261102", "--db", db, "--out",
                str(kept), cwd=tmp_path)  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    from_history = {
        ("scratch117", r[1], r[0]): [r[2], r[3], r[6], r[4], r[5], r[8]]
        for r in rows(kept / "aggregate-groups.tsv")
        if r[8] != "unchanged"
    }
    assert from_history == {k: v for k, v in groups.items() if k[0] == "scratch117"}
    missing = cli("diff", "scratch117@20261101", "scratch117@20261009", "--db", db, cwd=tmp_path)
    assert missing.returncode == ExitCode.USAGE
    assert "no snapshot of scratch117 on 2026-10-09 in the history" in missing.stderr
    # the file-level diff of each volume, from the two stats files still in WRSTAT_DIR
    for volume in ("scratch117", "scratch123"):
        old, new = sorted(
            [*data.glob(f"*_{volume}.*.stats.gz"), *data.glob(f"*{volume}/stats.gz")])  # fmt: skip
        check_against_oracle(old, new, out / f"file-changes-{volume}-20261102")


def test_no_history_no_changes(tmp_path: Path) -> None:
    data, out = tmp_path / "in", tmp_path / "reports"
    generate(data, 500, "scratch117=v3", date="20261102", history=1)
    ran = run(tmp_path, f"WRSTAT_DIR={data}", f"REPORT_DIR={out}", "WRSTAT_SNAPSHOTS=all",
              "HISTORY_DB=off")  # fmt: skip
    assert ran.returncode == ExitCode.OK, ran.stderr
    assert "no history kept (history: off): no changes to write" in ran.stderr
    assert not list(out.glob("changes-*"))
