"""The wrstat reports with names, quotas, forecasts and history, run as a user runs them
(``pipeline run`` in its own process): on the sample data with its past, with identities
from a real slapd and the history in a real MariaDB, and with MariaDB stopped mid-run."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pymysql
import pytest

from pipeline.errors import ExitCode
from tests.brokers import HOST, free_port
from tests.conftest import REPO, Ran, cli, start_cli
from tests.databases import MariaDB
from tests.directories import SUFFIX, Slapd
from tests.stages.wrstat.conftest import generate, read_jsonl

pytestmark = pytest.mark.integration

DAY = "20261105"


def run(tmp_path: Path, *settings: str, env: dict[str, str] | None = None) -> Ran:
    """``pipeline run`` of the default topology with ``-e`` settings, in ``tmp_path``."""
    args = [f"-e{s}" for s in settings]
    return cli("run", str(REPO / "topology.yaml"), "--progress", "off", *args, cwd=tmp_path,
               env=env, timeout=120)  # fmt: skip


def summary(tmp_path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((tmp_path / ".pipeline/wrstat/summary.json").read_text())
    return data


def tsv(path: Path) -> list[list[str]]:
    return [line.split("\t") for line in path.read_text().splitlines()[1:]]


def test_the_sample_with_its_past_gets_names_quotas_forecasts_and_pictures(
    tmp_path: Path,
) -> None:
    data, out = tmp_path / "in", tmp_path / "reports"
    generate(data, 3000, "scratch117=v3,scratch123=v6.4", date=DAY, history=4)
    settings = (f"WRSTAT_DIR={data}", f"REPORT_DIR={out}", "WRSTAT_SNAPSHOTS=all",
                f"IDENTITIES={data}/identities.tsv", f"QUOTA_FILE={data}/quotas.csv")  # fmt: skip
    first = run(tmp_path, *settings)
    assert first.returncode == ExitCode.OK, first.stderr
    assert summary(tmp_path)["warnings"] == []  # every group named and with a quota
    days = [f"202611{d:02d}" for d in range(1, 6)]
    assert sorted(p.name for p in out.glob("group-*.tsv")) == [f"group-{d}.tsv" for d in days]
    newest = tsv(out / f"group-{DAY}.tsv")
    assert {r[9] for r in newest} == {"OK", "Kinda OK", "Not OK"}
    assert all(r[2] != "-" for r in newest if r[4] != "0")  # a PI for every group but root
    # one growing row, checked against a plain least-squares fit of its five snapshots
    row = next(r for r in newest if r[10] != "-" and r[6] != "0")
    key = (row[0], row[1], row[4])
    used = []
    for d in days:
        (match,) = [r for r in tsv(out / f"group-{d}.tsv") if (r[0], r[1], r[4]) == key]
        used.append(int(match[5]))
    slope = np.polyfit(np.arange(-4, 1), np.array(used, dtype=np.float64), 1)[0]
    assert float(row[10]) == pytest.approx((int(row[6]) - used[-1]) / slope, abs=0.051)
    pictures = sorted(out.glob(f"usage-*-{DAY}.png"))
    assert 1 <= len(pictures) <= 10
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in pictures)
    shown = cli(
        "history", row[3], "--volume", row[0], "--json", "--db", str(out / "history.sqlite")
    )
    assert shown.returncode == 0, shown.stderr
    kept = [json.loads(x) for x in shown.stdout.splitlines()]
    assert [r["used"] for r in kept if r["base_directory"] == row[1]] == used
    # the same run again: reports rewritten the same, the history not doubled
    before = {p.name: p.read_bytes() for p in out.glob("*.tsv")}
    again = run(tmp_path, *settings)
    assert again.returncode == ExitCode.OK, again.stderr
    assert {p.name: p.read_bytes() for p in out.glob("*.tsv")} == before
    shown = cli(
        "history", row[3], "--volume", row[0], "--json", "--db", str(out / "history.sqlite")
    )
    assert len(shown.stdout.splitlines()) == len(kept)


def test_identities_from_ldap_and_the_history_in_mariadb(tmp_path: Path) -> None:
    data, out = tmp_path / "in", tmp_path / "reports"
    generate(data, 2000, "scratch117=v6.4", date=DAY)
    people = f"ou=people,{SUFFIX}"
    extra = (
        f"\ndn: uid=pi1000,{people}\nobjectClass: inetOrgPerson\nuid: pi1000\ncn: P I\n"
        f"sn: Sulston\n\ndn: cn=sample1000,ou=group,{SUFFIX}\nobjectClass: posixGroup\n"
        f"objectClass: extensibleObject\ncn: sample1000\ngidNumber: 1000\n"
        f"owner: uid=pi1000,{people}\n\ndn: uid=u20000,{people}\nobjectClass: inetOrgPerson\n"
        f"objectClass: posixAccount\nuid: u20000\ncn: U\nsn: U\nuidNumber: 20000\n"
        "gidNumber: 1000\nhomeDirectory: /home/u20000\n"
    )
    with Slapd(tmp_path / "ldap", extra) as slapd, MariaDB(tmp_path / "mariadb") as mariadb:
        url = mariadb.database("usage")
        proc = run(tmp_path, f"WRSTAT_DIR={data}", f"REPORT_DIR={out}", f"HISTORY_DB={url}",
                   "IDENTITIES=ldap", f"LDAP_GROUP_BASE=ou=group,{SUFFIX}",
                   f"LDAP_USER_BASE={people}", env={"LDAP_URL": slapd.url})  # fmt: skip
        assert proc.returncode == ExitCode.OK, proc.stderr
        rows = read_jsonl(out / f"group-{DAY}.jsonl")
        mine = [r for r in rows if r["gid"] == 1000]
        assert mine and all((r["group"], r["pi"]) == ("sample1000", "Sulston") for r in mine)
        users = read_jsonl(out / f"user-{DAY}.jsonl")
        assert {r["user"] for r in users if r["uid"] == 20000} == {"u20000"}
        conn = pymysql.connect(host=HOST, port=mariadb.port, user="root", password="",
                               database="usage")  # fmt: skip
        with conn.cursor() as cur:
            cur.execute("SELECT COUNT(*) FROM `usage`")
            assert cur.fetchone() == (len(rows),)
            cur.execute("SELECT COUNT(*) FROM user_usage")
            assert cur.fetchone() == (len(users),)
            cur.execute("SELECT p.name FROM `usage` u JOIN pi p ON p.id = u.pi_id "
                        "JOIN unix_group g ON g.id = u.group_id WHERE g.gid = 1000")  # fmt: skip
            assert {r[0] for r in cur.fetchall()} == {"Sulston"}
        conn.close()
    assert not (out / "history.sqlite").exists()


def connections(server: MariaDB, database: str) -> int:
    """Client connections to ``database`` now."""
    conn = pymysql.connect(host=HOST, port=server.port, user="root", password="")
    with conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM information_schema.processlist WHERE db = %s",
                    (database,))  # fmt: skip
        (n,) = cur.fetchone()
    conn.close()
    return int(n)


def test_mariadb_stopped_mid_run_loses_no_row(tmp_path: Path) -> None:
    data, out = tmp_path / "in", tmp_path / "reports"
    generate(data, 100_000, "scratch117=v3", date=DAY)
    (stats,) = data.glob("*.stats.gz")
    member = stats.read_bytes()
    with stats.open("ab") as f:  # 4 million lines in 40 gzip members: a run long enough to
        for _ in range(39):  # be paused before its input is read, on a fast machine too
            f.write(member)
    topology = tmp_path / "topology.yaml"
    quick = "      plots: 10\n      retry: {attempts: 2, backoff: 0.2}"  # give up soon
    topology.write_text((REPO / "topology.yaml").read_text().replace("      plots: 10", quick))
    env = {"PIPELINE_REGISTRY": str(tmp_path / "registry")}
    with MariaDB(tmp_path / "mariadb") as mariadb:
        url = mariadb.database("usage")
        settings = [f"-eWRSTAT_DIR={data}", f"-eREPORT_DIR={out}", f"-eHISTORY_DB={url}"]
        frame = start_cli("run", str(topology), "--progress", "off", *settings, cwd=tmp_path,
                          env=env)  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            while cli("pause", env=env).returncode != 0:  # held, before its input is all read
                assert time.monotonic() < deadline and frame.poll() is None, "it never ran"
                time.sleep(0.05)
            while connections(mariadb, "usage") == 0:  # the report stage has its store open
                assert time.monotonic() < deadline and frame.poll() is None, "no connection"
                time.sleep(0.05)
            mariadb.stop()  # mid-run: connected, nothing recorded yet
            assert cli("resume", env=env).returncode == 0
            _, err = frame.communicate(timeout=120)
        finally:
            if frame.poll() is None:
                frame.kill()
                frame.communicate()
        assert frame.returncode == ExitCode.OK, err
        warnings = [w for w in summary(tmp_path)["warnings"] if "history" in w]  # (and quotas)
        spooled = [w for w in warnings if "history-spool.jsonl" in w]
        assert len(spooled) == 1 and "could not be written" in spooled[0], warnings
        # and the changes since the last snapshot wait for a run that can read the history
        (waiting,) = [w for w in warnings if w not in spooled]
        assert (
            "could not be read" in waiting and f"no changes written for scratch117@{DAY}" in waiting
        )
        assert (out / "history-spool.jsonl").exists()
        groups = len(read_jsonl(out / f"group-{DAY}.jsonl"))
        mariadb.start()  # back: the next run records what the last one spooled
        again = run(tmp_path, *(s[2:] for s in settings))
        assert again.returncode == ExitCode.OK, again.stderr
        assert not (out / "history-spool.jsonl").exists()
        conn = pymysql.connect(host=HOST, port=mariadb.port, user="root", password="",
                               database="usage")  # fmt: skip
        with conn.cursor() as cur:
            cur.execute("SELECT COUNT(*), COUNT(DISTINCT snapshot) FROM `usage`")
            assert cur.fetchone() == (groups, 1)
        conn.close()


def test_an_unreachable_directory_is_a_warning_in_the_summary_not_a_failure(
    tmp_path: Path,
) -> None:
    data, out = tmp_path / "in", tmp_path / "reports"
    generate(data, 1000, "scratch117=v3", date=DAY)
    nowhere = f"ldap://{HOST}:{free_port()}"
    proc = run(tmp_path, f"WRSTAT_DIR={data}", f"REPORT_DIR={out}", "IDENTITIES=ldap",
               "HISTORY_DB=off", env={"LDAP_URL": nowhere})  # fmt: skip
    assert proc.returncode == ExitCode.OK, proc.stderr
    ldap = [w for w in summary(tmp_path)["warnings"] if "LDAP" in w]
    assert len(ldap) == 1 and nowhere in ldap[0] and "system databases" in ldap[0]
    assert f"warning: {ldap[0]}" in proc.stderr  # and on the terminal, at the end
    assert not (out / "history.sqlite").exists()  # HISTORY_DB=off keeps none
