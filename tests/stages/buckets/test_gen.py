"""``pipeline gen metpx``: Sundew logs in the shapes, rates and times their readers expect.

The logs are read back with this file's own plain regexes, written from the format (the
Sundew logger's ``%(asctime)s [%(levelname)s] %(message)s`` and the product name's seventh
field), not from the generator.
"""

from __future__ import annotations

import argparse
import calendar
import functools
import re
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from pipeline.errors import ExitCode, UsageError
from stages.buckets.gen import add_generator
from tests.conftest import cli

pytestmark = pytest.mark.timeout(30)

LINE = re.compile(rb"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),\d{3} \[(INFO|WARNING|ERROR)\] (.*)")
#: the message of each kind of line; ``name`` is the product (the line's 7th token)
SHAPES = {
    "delivered bulletin": (b"INFO", rb"\(\d+ Bytes\) Bulletin (?P<name>\S+)  delivered"),
    "delivered file": (b"INFO", rb"\(\d+ Bytes\) File (?P<name>\S+) delivered to \w+://\S+"),
    "throughput": (b"INFO", rb"\d+ Bytes/sec"),
    "segment": (b"INFO", rb"Segment (\d+)/(\d+) of (?P<name>\S+) \(\d+ Bytes\) sent"),
    "timeout": (b"WARNING", rb"SEND TIMEOUT on (?P<name>\S+) \(\d+ Bytes\) after \d+ s"),
    "error": (b"ERROR", rb"\(\d+ Bytes\) File (?P<name>\S+) not delivered: \S.*"),
    "ingested": (b"INFO", rb"\(\d+ Bytes\) Ingested (?P<name>\S+) from \w+://\S+"),
    "ingest error": (b"ERROR", rb"\(\d+ Bytes\) Ingest (?P<name>\S+) failed: \S.*"),
}
MESSAGES = {kind: (level, re.compile(rx)) for kind, (level, rx) in SHAPES.items()}
STAMP = re.compile(r"\d{14}")
TX_KINDS = {"delivered bulletin", "delivered file", "throughput", "segment", "timeout", "error"}
END, HOURS, TZ = "2026-11-29 06:00", 24, "America/Montreal"


@dataclass
class Log:
    """One log file read back: its lines' kinds, times (UTC) and latencies."""

    kinds: Counter[str] = field(default_factory=Counter)
    #: every line with a readable time, in file order: local (naive) and UTC seconds
    local: list[datetime] = field(default_factory=list)
    utc: list[float] = field(default_factory=list)
    #: (UTC second of the line, seconds since the stamp in its product's name)
    latencies: list[tuple[int, int]] = field(default_factory=list)
    #: UTC seconds of the error lines
    errors: list[float] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def read_log(path: Path, tz: ZoneInfo) -> Log:
    log = Log()
    folded = False  # the clocks went back: times of the repeated hour are its second pass
    minutes: dict[tuple[bytes, bool], tuple[datetime, float] | None] = {}
    for number, raw in enumerate(path.read_bytes().split(b"\n")[:-1], 1):
        where = f"{path}:{number}"
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            log.kinds["malformed: not utf-8"] += 1
            log.problems.append(where)
            continue
        m = LINE.fullmatch(raw)
        minute = None
        if m is not None:  # read once a minute: strptime and zoneinfo are slow
            key = (m.group(1)[:16], folded)
            if key not in minutes:
                minutes[key] = _minute(key[0], tz, folded)
            minute = minutes[key]
        if m is None or minute is None or int(m.group(1)[17:]) > 59:
            log.kinds["malformed: time"] += 1
            log.problems.append(where)
            continue
        seconds = int(m.group(1)[17:])
        when = minute[0] + timedelta(seconds=seconds)
        if log.local and when < log.local[-1] and not folded:
            folded = True
            minute = _minute(m.group(1)[:16], tz, folded)
            assert minute is not None
        log.local.append(when)
        log.utc.append(minute[1] + seconds)
        kind, name = _kind(m.group(2), m.group(3))
        if kind is None:
            log.kinds["malformed: cut short"] += 1
            log.problems.append(where)
            continue
        if name is not None:
            assert raw.split(b" ")[6] == name, f"{where}: the name is not the 7th token"
            fields = name.decode().split(":")
            stamp = _stamp(fields[6]) if len(fields) >= 7 else None
            if stamp is None:
                log.kinds["malformed: fields"] += 1
                log.problems.append(where)
                continue
            second = int(log.utc[-1])
            log.latencies.append((second, second - stamp))
        log.kinds[kind] += 1
        if kind.endswith("error"):
            log.errors.append(log.utc[-1])
    return log


def _minute(text: bytes, tz: ZoneInfo, fold: bool) -> tuple[datetime, float] | None:
    """A local ``YYYY-MM-DD HH:MM`` as it reads (naive) and its start in UTC seconds."""
    try:
        local = datetime.strptime(text.decode(), "%Y-%m-%d %H:%M")
    except ValueError:
        return None
    return local, local.replace(tzinfo=tz, fold=int(fold)).timestamp()


@functools.cache
def _stamp_minute(text: str) -> int:
    return calendar.timegm(time.strptime(text, "%Y%m%d%H%M"))


def _stamp(text: str) -> int | None:
    """A reception stamp ``YYYYMMDDHHMMSS`` (UTC) in seconds."""
    if not STAMP.fullmatch(text) or int(text[12:]) > 59:
        return None
    try:
        return _stamp_minute(text[:12]) + int(text[12:])
    except ValueError:
        return None


def _kind(level: bytes, message: bytes) -> tuple[str | None, bytes | None]:
    for kind, (want, rx) in MESSAGES.items():
        m = rx.fullmatch(message)
        if m and level == want:
            return kind, m.groupdict().get("name")
    return None, None


def gen(*argv: str) -> int:
    """``pipeline gen metpx ARGV`` in this process."""
    parser = argparse.ArgumentParser()
    add_generator(parser.add_subparsers())
    args = parser.parse_args(["metpx", *argv])
    code: int = args.handler(args)
    return code


def window(end: str, hours: int, tz: str) -> tuple[float, float]:
    stop = datetime.strptime(end, "%Y-%m-%d %H:%M").replace(tzinfo=ZoneInfo(tz)).timestamp()
    return stop - hours * 3600, stop


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Log]:
    """Two clients' logs of a day on one machine, read back, by file name."""
    folder = tmp_path_factory.mktemp("metpx")
    assert gen(str(folder), "--lines", "60000", "--clients", "cmc-ftp,nws-bulletins",
               "--machines", "pxatx1", "--end", END, "--seed", "3") == 0  # fmt: skip
    return {p.name: read_log(p, ZoneInfo(TZ)) for p in sorted((folder / "pxatx1").iterdir())}


def test_one_file_per_machine_client_and_side(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert gen(str(tmp_path), "--lines", "3000", "--end", END) == 0
    files = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert files == sorted(
        f"{machine}/{side}_{client}.log"
        for machine in ("pxatx1", "pxatx2")
        for client in ("cmc-ftp", "nws-bulletins", "ukmet-grib", "dwd-radar")
        for side in ("rx", "tx")
    )
    for name in files:
        assert len((tmp_path / name).read_bytes().splitlines()) == 3000, name
    out = capsys.readouterr().out.splitlines()
    assert f"{tmp_path}/pxatx1/tx_cmc-ftp.log: 3,000 lines" in out
    assert out[-1] == (
        f"wrote 48,000 lines in 16 files to {tmp_path}: "
        "2026-11-28 06:00 EST to 2026-11-29 06:00 EST (24 h, America/Montreal)"
    )


def test_every_kind_of_line_at_its_rate(sample: dict[str, Log]) -> None:
    for name, log in sample.items():
        total = sum(log.kinds.values())
        assert total == 60000, name
        share = {kind: n / total for kind, n in log.kinds.items()}
        malformed = sum(n for kind, n in log.kinds.items() if kind.startswith("malformed"))
        assert 0 < malformed / total < 0.0005, name
        if name.startswith("tx_"):
            assert set(log.kinds) - {k for k in log.kinds if k.startswith("malformed")} == TX_KINDS
            delivered = share["delivered bulletin"] + share["delivered file"]
            assert delivered > 0.8
            assert 0.4 < share["delivered bulletin"] / delivered < 0.6
            assert 0.05 < share["throughput"] < 0.12
            assert 0.01 < share["segment"] < 0.05
            assert 0.001 < share["timeout"] < 0.006
            assert 0.006 < share["error"] < 0.02
        else:
            assert share["ingested"] > 0.98
            assert 0.002 < share["ingest error"] < 0.01
    every = Counter[str]()
    for log in sample.values():
        every.update(log.kinds)
    assert {k for k in every if k.startswith("malformed")} == {
        "malformed: not utf-8",
        "malformed: time",
        "malformed: cut short",
        "malformed: fields",
    }


def test_malformed_lines_can_be_told_by_file_and_line(sample: dict[str, Log]) -> None:
    for name, log in sample.items():
        for where in log.problems:
            path, _, number = where.rpartition(":")
            assert path.endswith(f"/pxatx1/{name}") and number.isdigit()


def test_times_in_order_inside_the_window(sample: dict[str, Log]) -> None:
    start, stop = window(END, HOURS, TZ)
    for name, log in sample.items():
        assert log.utc == sorted(log.utc), name
        assert start <= log.utc[0] and log.utc[-1] < stop, name
        # spread over the whole day, not bunched at one end
        assert log.utc[0] - start < 60 and stop - log.utc[-1] < 60, name


def test_latencies_mostly_small_with_bursts_and_late_files(sample: dict[str, Log]) -> None:
    for name, log in sample.items():
        latencies = [lat for _, lat in log.latencies]
        assert min(latencies) >= 0, name
        if name.startswith("rx_"):  # the receiver stamps what it takes in as it logs it
            assert max(latencies) == 0, name
            continue
        n = len(latencies)
        assert sum(lat <= 10 for lat in latencies) / n > 0.8, name
        assert statistics.median(latencies) <= 3, name
        assert 0.02 < sum(lat > 15 for lat in latencies) / n < 0.2, name
        assert 0.001 < sum(lat > 600 for lat in latencies) / n < 0.006, name
        assert max(latencies) <= 3600 + 150, name


def test_bursts_every_hour_at_five_times_the_rate_with_more_errors(
    sample: dict[str, Log],
) -> None:
    log = sample["tx_cmc-ftp.log"]
    per_minute = Counter(int(t) // 60 for t in log.utc)
    typical = statistics.median(per_minute.values())
    start, _ = window(END, HOURS, TZ)
    for hour in range(HOURS):
        first = int(start) // 60 + hour * 60
        busiest = max(per_minute[m] for m in range(first, first + 60))
        assert busiest > 3 * typical, f"no burst in hour {hour}"
    bursts = {m for m, n in per_minute.items() if n > 3 * typical}
    in_bursts = sum(per_minute[m] for m in bursts)
    errors_in_bursts = sum(int(t) // 60 in bursts for t in log.errors)
    share_in, share_out = (
        errors_in_bursts / in_bursts,
        (len(log.errors) - errors_in_bursts) / (len(log.utc) - in_bursts),
    )
    assert share_in > 2 * share_out


@pytest.mark.parametrize(
    ("end", "change"),
    [("2026-11-01 06:00", "clocks back at 02:00 EDT"), ("2026-03-08 06:00", "forward at 02:00")],
)
def test_a_window_across_a_dst_change(tmp_path: Path, end: str, change: str) -> None:
    assert gen(str(tmp_path), "--end", end, "--hours", "6", "--tz", TZ, "--lines", "30000",
               "--clients", "a", "--machines", "m") == 0  # fmt: skip
    start, stop = window(end, 6, TZ)
    log = read_log(tmp_path / "m" / "tx_a.log", ZoneInfo(TZ))
    assert log.utc == sorted(log.utc) and start <= log.utc[0] and log.utc[-1] < stop
    hours = {t.hour for t in log.local}
    if "back" in change:  # the hour 01:00 comes twice: local times go back once
        assert sum(b < a for a, b in zip(log.local, log.local[1:], strict=False)) == 1
        assert hours == {1, 2, 3, 4, 5}
    else:  # 02:00-03:00 never happens: from 23:00 EST the day before to 06:00 EDT
        assert hours == {23, 0, 1, 3, 4, 5}
    # each UTC hour's latencies are those of any hour: no hour off by one
    by_hour: dict[int, list[int]] = {}
    for second, latency in log.latencies:
        by_hour.setdefault(second // 3600, []).append(latency)
    assert len(by_hour) == 6
    for hour, latencies in by_hour.items():
        assert min(latencies) >= 0, hour
        assert statistics.median(latencies) <= 3, hour


def test_the_same_seed_writes_the_same_files(tmp_path: Path) -> None:
    args = ["--lines", "5000", "--clients", "a,b", "--end", END]
    for run, seed in (("one", "7"), ("two", "7"), ("other", "8")):
        assert gen(str(tmp_path / run), *args, "--seed", seed) == 0
    files = sorted(p.relative_to(tmp_path / "one") for p in (tmp_path / "one").rglob("*.log"))
    assert len(files) == 8
    for f in files:
        assert (tmp_path / "one" / f).read_bytes() == (tmp_path / "two" / f).read_bytes()
        assert (tmp_path / "one" / f).read_bytes() != (tmp_path / "other" / f).read_bytes()


def test_200000_lines_a_file_in_a_few_seconds(tmp_path: Path) -> None:
    began = time.perf_counter()
    assert gen(str(tmp_path), "--lines", "200000", "--clients", "a", "--machines", "m") == 0
    took = time.perf_counter() - began
    assert (tmp_path / "m" / "tx_a.log").read_bytes().count(b"\n") == 200000
    assert took < 15, f"{took:.1f} s for 400,000 lines"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tz", "Mars/Olympus"], "--tz 'Mars/Olympus' is not a time zone"),
        (["--end", "2026-11-01"], "--end '2026-11-01' is not a local time like"),
        (["--hours", "0"], "--hours 0: give 1 or more"),
        (["--lines", "0"], "--lines 0: give 1 or more"),
        (["--clients", "a,,b"], "--clients: '' is not a name"),
        (["--machines", "m/1"], "--machines: 'm/1' is not a name"),
        (["--clients", "a,a"], "--clients 'a,a': a name is given twice"),
    ],
)
def test_bad_options_say_what_to_give(tmp_path: Path, args: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=re.escape(message)):
        gen(str(tmp_path / "out"), *args)
    assert not (tmp_path / "out").exists()


@pytest.mark.integration
def test_the_command_is_registered_and_exits_2_on_bad_usage(tmp_path: Path) -> None:
    ok = cli("gen", "metpx", str(tmp_path), "--lines", "100", "--clients", "a", "--hours", "1")
    assert ok.returncode == ExitCode.OK, ok.stderr
    assert ok.stdout.splitlines()[-1].startswith(f"wrote 400 lines in 4 files to {tmp_path}: ")
    bad = cli("gen", "metpx", str(tmp_path), "--tz", "Nowhere")
    assert bad.returncode == ExitCode.USAGE
    assert "--tz 'Nowhere' is not a time zone" in bad.stderr
