"""``pipeline history``: a group's kept usage from the command line."""

from __future__ import annotations

import json
from pathlib import Path

from stages.wrstat.history import SqliteHistory
from tests.conftest import cli
from tests.stages.wrstat.test_history import DAY1, DAY2, snapshot


def test_history_prints_every_snapshot_of_a_group(tmp_path: Path) -> None:
    db = tmp_path / "history.sqlite"
    store = SqliteHistory(db)
    store.record(snapshot(DAY1, 100 * 2**30))
    store.record(snapshot(DAY2, 150 * 2**30))
    store.close()
    shown = cli("history", "hgi", "--db", str(db))
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0].split()[:4] == ["SNAPSHOT", "VOLUME", "USED", "QUOTA"]
    assert lines[1].split()[:5] == ["2026-11-01", "scratch117", "100", "GiB", "931.3"]
    assert "150 GiB" in lines[2] and "16%" in lines[2] and "/lustre/scratch117/hgi" in lines[2]
    as_json = [
        json.loads(x) for x in cli("history", "1313", "--db", str(db), "--json").stdout.splitlines()
    ]
    assert [r["used"] for r in as_json] == [100 * 2**30, 150 * 2**30]
    missing = cli("history", "nobody", "--db", str(db))
    assert missing.returncode == 1 and "nothing kept for group nobody" in missing.stderr
    nofile = cli("history", "hgi", "--db", str(tmp_path / "none.sqlite"))
    assert nofile.returncode == 2 and "give --db or set HISTORY_DB" in nofile.stderr
