"""``pipeline buckets update`` and ``pipeline graph`` on generated logs, end to end: the
minutes graphed are the minutes a plain reading of the logs gives."""

from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from pipeline.errors import ExitCode
from tests.conftest import cli

pytestmark = pytest.mark.integration

TZ = "America/Montreal"
LINE = re.compile(
    rb"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) \[(INFO|ERROR)\] \((\d+) Bytes\) \S+ (\S+)"
)


def plain_minutes(logs: Path, client: str) -> dict[str, list[float]]:
    """minute -> [files, latency sum, bytes, errors], from every tx log of the client."""
    zone = ZoneInfo(TZ)
    out: dict[str, list[float]] = defaultdict(lambda: [0, 0.0, 0, 0])
    for log in sorted(logs.glob(f"*/tx_{client}.log")):
        previous = None
        fold = 0
        for raw in log.read_bytes().splitlines():
            m = LINE.match(raw)
            if not m or b"Bytes/sec" in raw or b" Segment " in raw or b"SEND TIMEOUT" in raw:
                continue
            fields = m.group(5).split(b":")
            if len(fields) < 7 or not re.fullmatch(rb"\d{14}", fields[6][:14]):
                continue
            try:
                m.group(5).decode()
            except UnicodeDecodeError:
                continue
            local = dt.datetime.strptime(m.group(1).decode(), "%Y-%m-%d %H:%M:%S")
            local += dt.timedelta(milliseconds=int(m.group(2)))
            if previous is not None and local < previous - dt.timedelta(minutes=1):
                fold = 1  # the hour that happens twice, second time
            previous = local
            when = local.replace(tzinfo=zone, fold=fold).astimezone(dt.UTC)
            stamp = dt.datetime.strptime(fields[6][:14].decode(), "%Y%m%d%H%M%S").replace(
                tzinfo=dt.UTC
            )
            minute = when.strftime("%Y-%m-%dT%H:%MZ")
            row = out[minute]
            row[0] += 1
            row[1] += (when - stamp).total_seconds()
            row[2] += int(m.group(4))
            row[3] += m.group(3) == b"ERROR"
    return out


def test_update_then_graph_gives_the_minutes_of_a_plain_reading(tmp_path: Path) -> None:
    logs, cache = tmp_path / "logs", tmp_path / "cache"
    ran = cli(
        "gen",
        "metpx",
        str(logs),
        "--hours",
        "3",
        "--lines",
        "6000",
        "--clients",
        "cmc-ftp,nws-bulletins",
        "--end",
        "2026-11-29 06:00",
        "--seed",
        "4",
    )
    assert ran.returncode == 0, ran.stderr
    # half the logs cached, as cron would have done an hour before; the rest read live
    for log in logs.glob("*/*.log"):
        data = log.read_bytes()
        (log.parent / f".{log.name}.whole").write_bytes(data)
        log.write_bytes(data[: data.index(b"\n", len(data) // 2) + 1])
    up = cli("buckets", "update", str(logs), "--cache", str(cache), "--tz", TZ)
    assert up.returncode == 0, up.stderr
    for whole in logs.glob("*/.*.whole"):  # the logs grew since, in place
        log = whole.parent / whole.name[1:-6]
        with log.open("ab") as f:
            f.write(whole.read_bytes()[log.stat().st_size :])
        whole.unlink()
    out = tmp_path / "g" / "cmc.png"
    g = cli(
        "graph",
        "cmc-ftp",
        "--cache",
        str(cache),
        "--logs",
        str(logs),
        "--tz",
        TZ,
        "--hours",
        "4",
        "--end",
        "2026-11-29 12:00",
        "--out",
        str(out),
    )
    assert g.returncode == ExitCode.OK, g.stderr
    assert out.read_bytes()[:4] == b"\x89PNG"
    rows = [r.split(",") for r in out.with_suffix(".csv").read_text().splitlines()[1:]]
    assert len(rows) == 240  # every minute of the window, empty ones too
    want = plain_minutes(logs, "cmc-ftp")
    got = {r[1]: r for r in rows if r[2] != "0"}
    assert set(got) == set(want)
    for minute, (files, latency, nbytes, errors) in want.items():
        r = got[minute]
        assert int(r[2]) == files
        assert float(r[3]) == pytest.approx(latency / files, abs=1e-3)
        assert (int(r[6]), int(r[7])) == (nbytes, errors)
    # a second update reads only what is new, and the cache then holds it all
    again = cli("buckets", "update", str(logs), "--cache", str(cache), "--tz", TZ)
    assert again.returncode == 0, again.stderr
    counted = int(re.match(r"([\d,]+) new lines", again.stdout).group(1).replace(",", ""))
    total = sum(len(p.read_bytes().splitlines()) for p in logs.glob("*/*.log"))
    first = int(re.match(r"([\d,]+) new lines", up.stdout).group(1).replace(",", ""))
    assert first + counted == total
    cached = cli(
        "graph",
        "cmc-ftp",
        "--cache",
        str(cache),
        "--tz",
        TZ,
        "--hours",
        "4",
        "--end",
        "2026-11-29 12:00",
        "--out",
        str(tmp_path / "c.png"),
    )
    assert cached.returncode == 0, cached.stderr
    assert (tmp_path / "c.csv").read_text() == out.with_suffix(".csv").read_text()


def test_graph_says_which_hours_it_has_nothing_for(tmp_path: Path) -> None:
    g = cli(
        "graph",
        "nobody",
        "--cache",
        str(tmp_path / "none"),
        "--hours",
        "2",
        "--end",
        "2026-11-29 12:00",
        "--out",
        str(tmp_path / "n.png"),
    )
    assert g.returncode == 0, g.stderr
    assert (tmp_path / "n.png").exists()
