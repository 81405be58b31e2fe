"""``pipeline buckets update`` and ``pipeline graph`` on generated logs, end to end: the
minutes graphed are the minutes a plain reading of the logs gives."""

from __future__ import annotations

import datetime as dt
import re
import subprocess
import sys
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


def plain_minutes(
    logs: Path, client: str, rotated: bool = False, threshold: float = 15.0
) -> dict[str, list[float]]:
    """minute -> [files, latency sum, bytes, errors, files over threshold], from every tx log
    of the client (and its rotated ones, if asked)."""
    zone = ZoneInfo(TZ)
    out: dict[str, list[float]] = defaultdict(lambda: [0, 0.0, 0, 0, 0])
    for log in sorted(logs.glob(f"*/tx_{client}.log" + ("*" if rotated else ""))):
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
            row[4] += (when - stamp).total_seconds() > threshold
    return out


def csv_minutes(path: Path) -> dict[str, list[str]]:
    """minute -> its CSV row, for the minutes with files."""
    rows = [r.split(",") for r in path.read_text().splitlines()[1:]]
    return {r[1]: r for r in rows if r[2] != "0"}


def generate(logs: Path, *clients: str) -> None:
    ran = cli("gen", "metpx", str(logs), "--hours", "3", "--lines", "6000", "--clients",
              ",".join(clients), "--end", "2026-11-29 06:00", "--seed", "4")  # fmt: skip
    assert ran.returncode == 0, ran.stderr


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
    for minute, (files, latency, nbytes, errors, over) in want.items():
        r = got[minute]
        assert int(r[2]) == files
        assert float(r[3]) == pytest.approx(latency / files, abs=1e-3)
        assert (int(r[6]), int(r[7])) == (nbytes, errors)
        assert int(r[5]) == over
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


def test_a_log_rotated_by_rename_after_an_update_is_not_counted_twice(tmp_path: Path) -> None:
    logs, cache = tmp_path / "logs", tmp_path / "cache"
    generate(logs, "cmc-ftp")
    # each log in three parts: the first read by an update (counting minutes over 20 s);
    # the second written after it, before the log is renamed by a rotation; the third in
    # the new log of the same name
    parts = {}
    for log in logs.glob("*/*.log"):
        data = log.read_bytes()
        one = data.index(b"\n", len(data) // 3) + 1
        two = data.index(b"\n", 2 * len(data) // 3) + 1
        parts[log] = (data[one:two], data[two:])
        log.write_bytes(data[:one])
    up = cli("buckets", "update", str(logs), "--cache", str(cache), "--tz", TZ, "--threshold", "20")
    assert up.returncode == 0, up.stderr
    for log, (written, new) in parts.items():
        with log.open("ab") as f:
            f.write(written)
        log.rename(log.with_name(f"{log.name}.2026-11-29"))
        log.write_bytes(new)
    graph = ["graph", "cmc-ftp", "--cache", str(cache), "--tz", TZ, "--hours", "4", "--end",
             "2026-11-29 12:00"]  # fmt: skip
    g = cli(*graph, "--logs", str(logs), "--out", str(tmp_path / "live.png"))
    assert g.returncode == 0, g.stderr
    got = csv_minutes(tmp_path / "live.csv")
    want = plain_minutes(logs, "cmc-ftp", rotated=True)  # over 15 s, the graph's default
    assert set(got) == set(want)
    for minute, (files, _, nbytes, errors, over) in want.items():
        r = got[minute]
        assert (int(r[2]), int(r[5]), int(r[6]), int(r[7])) == (files, over, nbytes, errors)
    # the next update reads what the first did not, once
    again = cli("buckets", "update", str(logs), "--cache", str(cache), "--tz", TZ)
    assert again.returncode == 0, again.stderr
    total = sum(len(p.read_bytes().splitlines()) for p in logs.glob("*/*.log*"))
    read = [int(re.match(r"([\d,]+) new lines", u.stdout).group(1).replace(",", ""))
            for u in (up, again)]  # fmt: skip
    assert sum(read) == total
    cached = cli(*graph, "--out", str(tmp_path / "cached.png"))
    assert cached.returncode == 0, cached.stderr
    assert (tmp_path / "cached.csv").read_text() == (tmp_path / "live.csv").read_text()


def test_graph_without_logs_loads_no_log_parser(tmp_path: Path) -> None:
    code = (
        "import argparse, sys\n"
        "from stages.buckets.cli import graph\n"
        f"args = argparse.Namespace(clients=['cmc-ftp'], cache={str(tmp_path)!r}, logs=None,\n"
        "    tz='UTC', hours=2.0, end='2026-11-29 12:00', threshold=15.0,\n"
        f"    out={str(tmp_path / 'g.png')!r})\n"
        "assert graph(args) == 0\n"
        "print(sorted(m for m in sys.modules if m.startswith(('numba', 'stages.buckets.metpx'))))\n"
    )
    ran = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=False)  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.splitlines()[-1] == "[]"
    assert (tmp_path / "g.png").exists()
