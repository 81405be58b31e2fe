"""Names, quotas, forecasts and the kept history of a run's figures (stages.wrstat.enrich),
with a real SQLite file, and a real MariaDB that is down when the run starts."""

from __future__ import annotations

import asyncio
import datetime as dt
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pymysql
import pytest

from pipeline import Context
from stages.wrstat.enrich import DateFigures, Enriched, Enricher, GroupFigures, UserFigures
from stages.wrstat.history import HistoryError
from stages.wrstat.identities import IdentityFileError
from tests.brokers import HOST, free_port
from tests.databases import MariaDB

DAY = dt.date(2026, 11, 10)
GiB = 2**30
MAPPING = "group\t1313\thgi\tSmith\ngroup\t1314\tteam\nuser\t7001\tasmith\n"
#: hgi 100 GiB on scratch117 (in KiB); team has no row
QUOTAS = f"group,limit,volume\nhgi,{100 * 2**20},scratch117\n"


def figures(day: dt.date, hgi: float, team: float = 1.0) -> DateFigures:
    """One date: hgi using ``hgi`` GiB in one base directory, team ``team`` GiB."""
    m = "/lustre/scratch117"
    return DateFigures(
        day,
        groups=[GroupFigures("scratch117", m, 1313, f"{m}/hgi", int(hgi * GiB), 10, 1.5),
                GroupFigures("scratch117", m, 1314, f"{m}/team", int(team * GiB), 2, 3.0)],
        users=[UserFigures("scratch117", 7001, 1313, int(hgi * GiB), 10, 1.5)],
    )  # fmt: skip


def enricher(folder: Path, **params: Any) -> Enricher:
    (folder / "ids.tsv").write_text(MAPPING)
    (folder / "quotas.csv").write_text(QUOTAS)
    defaults: dict[str, Any] = {"identities": str(folder / "ids.tsv"), "quota_command": "",
                                "quota_file": str(folder / "quotas.csv")}  # fmt: skip
    return Enricher(folder, **(defaults | params))


def run(e: Enricher, dates: Sequence[DateFigures], ctx: Context) -> Enriched:
    async def go() -> Enriched:
        await e.start(ctx)
        try:
            return await e.enrich(dates, ctx)
        finally:
            await e.close()

    return asyncio.run(go())


@pytest.fixture
def ctx(tmp_path: Path) -> Context:
    return Context("report", 0, 1, tmp_path)


def test_names_pis_and_quotas_fill_the_group_rows(tmp_path: Path, ctx: Context) -> None:
    got = run(enricher(tmp_path), [figures(DAY, 90)], ctx)
    assert (got.groups[1313].name, got.groups[1313].pi) == ("hgi", "Smith")
    assert (got.groups[1314].name, got.groups[1314].pi) == ("team", "-")
    assert got.users == {7001: "asmith"}
    s = got.dates[DAY]
    assert s.quota == [100 * GiB, None]
    assert s.warning == ["Not OK", None]  # 90% now is over 80% at 3 days; team: no quota
    assert s.days_to_full == [None, None]  # one snapshot: a flat forecast never fills
    assert got.unknown_quotas == [("scratch117", "team", f"quota file {tmp_path / 'quotas.csv'}:"
                                   f" {tmp_path / 'quotas.csv'} has no row for group team "
                                   "(gid 1314)")]  # fmt: skip


def test_each_date_is_forecast_from_the_ones_before_it(tmp_path: Path, ctx: Context) -> None:
    days = [DAY + dt.timedelta(days=k) for k in range(6)]
    used = [40.0, 44.0, 48.0, 52.0, 56.0, 70.0]  # 4 GiB a day, then 14 on the last day
    got = run(enricher(tmp_path), [figures(d, u) for d, u in zip(days, used, strict=True)], ctx)
    assert not ctx.warnings
    # the last date: the least-squares slope of the last 5 snapshots, as numpy fits it
    slope = np.polyfit(np.arange(-4, 1), np.array(used[1:]) * GiB, 1)[0]
    last = got.dates[days[-1]]
    assert last.slope[0] == pytest.approx(slope)
    assert last.days_to_full[0] == round((100 * GiB - 70 * GiB) / slope, 1)
    # 70 GiB + 3 days at ~6.4 GiB a day is 89% > 80%: Not OK; the day before, 56 + 3 x 4
    # is 68% and 56 + 7 x 4 = 84% is under 85%: OK
    assert last.warning[0] == "Not OK" and got.dates[days[-2]].warning[0] == "OK"
    # the history holds every date once; a second run of the same dates adds nothing and
    # forecasts the same
    db = sqlite3.connect(tmp_path / "history.sqlite")
    assert db.execute("SELECT COUNT(*), COUNT(DISTINCT snapshot) FROM usage").fetchone() == (12, 6)
    again = run(enricher(tmp_path), [figures(days[-1], used[-1])], ctx)
    assert again.dates[days[-1]] == last
    assert db.execute("SELECT COUNT(*) FROM usage").fetchone() == (12,)
    db.close()


def test_kinda_ok_is_a_group_that_will_pass_85_percent_within_a_week(
    tmp_path: Path, ctx: Context
) -> None:
    days = [DAY + dt.timedelta(days=k) for k in range(3)]
    got = run(enricher(tmp_path), [figures(d, u) for d, u in zip(days, [66, 68, 70], strict=True)],
              ctx)  # fmt: skip
    s = got.dates[days[-1]]  # 2 GiB a day: 76% at 3 days, 84% at 7 ... not yet
    assert s.warning[0] == "OK"
    got = run(enricher(tmp_path), [figures(days[-1] + dt.timedelta(days=1), 72.5)], ctx)
    s = got.dates[days[-1] + dt.timedelta(days=1)]  # now 2.15 a day: 78.9% and 87.5%
    assert s.warning[0] == "Kinda OK" and s.days_to_full[0] is not None


def test_no_history_forecasts_flat_and_keeps_nothing(tmp_path: Path, ctx: Context) -> None:
    got = run(enricher(tmp_path, history="off"), [figures(DAY, 50), figures(DAY, 50)], ctx)
    assert got.dates[DAY].slope == [0.0, 0.0]
    assert not (tmp_path / "history.sqlite").exists()


@pytest.mark.parametrize(
    ("params", "error", "words"),
    [
        ({"identities": "/nonexistent/ids.tsv"}, IdentityFileError, "cannot read the identity"),
        ({"identities": "ldap", "ldap": {"user_base": "ou=people"}}, ValueError,
         "identities: ldap needs group_base"),
        ({"history": "mysql://u:secret@db/usage"}, HistoryError, "HISTORY_DB_PASSWORD"),
        ({"retry": {"tries": 3}}, ValueError, "retry takes attempts and backoff"),
        ({"warnings": {"bad": 0.5}}, ValueError, "give {days ahead: share of quota}"),
        ({"forecast_points": 0}, ValueError, "forecast_points must be 1 or more"),
    ],
)  # fmt: skip
def test_a_bad_configuration_fails_before_any_input_is_read(
    tmp_path: Path, params: dict[str, Any], error: type[Exception], words: str
) -> None:
    with pytest.raises(error, match=words.replace("{", r"\{").replace("}", r"\}")):
        enricher(tmp_path, **params)


def test_an_unreachable_directory_names_from_the_system_and_says_so(
    tmp_path: Path, ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LDAP_URL", f"ldap://{HOST}:{free_port()}")
    e = enricher(tmp_path, identities="ldap",
                 ldap={"group_base": "ou=group,dc=x", "user_base": "ou=people,dc=x"})  # fmt: skip
    got = run(e, [figures(DAY, 10)], ctx)
    assert got.groups[1313].name != "hgi"  # not the mapping file: LDAP, then the system
    assert len(ctx.warnings) == 1
    assert "cannot be reached" in ctx.warnings[0] and "system databases" in ctx.warnings[0]


def test_mariadb_down_at_the_start_spools_and_the_next_run_records_it(
    tmp_path: Path, ctx: Context, caplog: pytest.LogCaptureFixture
) -> None:
    with MariaDB(tmp_path / "mariadb") as server:
        url = server.database("usage")
    # the server is down: the run says so at once, writes on, and keeps the figures
    e = enricher(tmp_path, history=url, retry={"attempts": 2, "backoff": 0.05})
    got = run(e, [figures(DAY, 50)], ctx)
    assert "cannot be used now" in caplog.text and "cannot reach the history database" in (
        caplog.text
    )
    assert got.dates[DAY].warning == ["OK", None]  # the reports are still filled in
    assert len(ctx.warnings) == 1 and "history-spool.jsonl" in ctx.warnings[0]
    assert (tmp_path / "history-spool.jsonl").exists()
    with server:  # back up: the next run records the spooled date before its own
        ctx2 = Context("report", 0, 1, tmp_path)
        run(enricher(tmp_path, history=url), [figures(DAY + dt.timedelta(days=1), 54)], ctx2)
        assert not ctx2.warnings
        assert not (tmp_path / "history-spool.jsonl").exists()
        rows = asyncio.run(_history(url))
    assert [(r["snapshot"], r["used"]) for r in rows] == [("2026-11-10", 50 * GiB),
                                                          ("2026-11-11", 54 * GiB)]  # fmt: skip


async def _history(url: str) -> list[dict[str, Any]]:
    from stages.wrstat.history_mysql import MysqlHistory  # noqa: PLC0415

    store = await MysqlHistory.open(url)
    try:
        return await store.group_history("hgi")
    finally:
        await store.close()


def test_a_connection_lost_during_the_run_is_opened_again_for_the_forecasts(
    tmp_path: Path, ctx: Context
) -> None:
    with MariaDB(tmp_path / "mariadb") as server:
        url = server.database("usage")
        run(enricher(tmp_path, history=url), [figures(DAY, 50)], ctx)
        e = enricher(tmp_path, history=url)

        async def go() -> Enriched:
            await e.start(ctx)
            try:
                store: Any = e.store
                async with store.conn.cursor() as cur:
                    await cur.execute("SELECT CONNECTION_ID()")
                    (mine,) = await cur.fetchone()
                killer = pymysql.connect(host=HOST, port=server.port, user="root", password="")
                killer.cursor().execute(f"KILL {mine}")  # as a server's idle timeout would
                killer.close()
                return await e.enrich([figures(DAY + dt.timedelta(days=1), 54)], ctx)
            finally:
                await e.close()

        got = asyncio.run(go())
    assert not ctx.warnings
    assert got.dates[DAY + dt.timedelta(days=1)].slope[0] == pytest.approx(4 * GiB)
