"""The MetPX line parser against a plain reference written from the rules (regular
expressions, ``datetime`` and ``zoneinfo``; no code shared with the parser)."""

from __future__ import annotations

import datetime as dt
import itertools
import math
import re
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from pipeline import Columns
from stages.buckets.metpx import MetpxParser, Parsed

MONTREAL = ZoneInfo("America/Montreal")
UTC = dt.UTC
EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)
MS = dt.timedelta(milliseconds=1)

HEAD = re.compile(r"(\d{4})-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d),(\d{3})")
LEVEL = re.compile(r" \[([^\] \n]{1,21})\](?= |$)")
STAMP = re.compile(r"\d{14}")
COUNT = re.compile(r"\d{1,18}")


def reference(lines: list[bytes], zone: ZoneInfo, direction: str) -> dict[str, Any]:
    """What each line of one file gives, read the slow and obvious way: the kept rows (as
    columns), the line numbers of the skipped ones, and of the rejected ones with a word
    for the reason."""
    rows: list[tuple[int, float, int, int, bytes, int]] = []
    skipped: list[int] = []
    rejected: list[tuple[int, str]] = []
    twice: dict[dt.datetime, tuple[dt.datetime, bool]] = {}  # repeated hour -> latest, 2nd?
    for number, raw in enumerate(lines, 1):
        read = read_line(raw.decode("utf-8", "surrogateescape"), direction == "tx")
        if read is None:
            skipped.append(number)
        elif isinstance(read, str):
            rejected.append((number, read))
        else:
            local, count, error, name, received = read
            when = to_utc(local, zone, twice)
            latency = math.nan
            if direction == "tx" and received is not None:
                latency = (when - (received - EPOCH) // MS) / 1000
            rows.append((when, latency, count, int(error), name, number))
    names = [r[4] for r in rows]
    columns = Columns(
        time=np.array([r[0] for r in rows], dtype=np.int64),
        latency=np.array([r[1] for r in rows], dtype=np.float64),
        bytes=np.array([r[2] for r in rows], dtype=np.int64),
        error=np.array([r[3] for r in rows], dtype=np.int8),
        name=np.array(names, dtype=f"S{max([1, *map(len, names)])}"),
        line=np.array([r[5] for r in rows], dtype=np.int64),
    )
    return {"columns": columns, "skipped": skipped, "rejected": rejected}


Read = tuple[dt.datetime, int, bool, bytes, dt.datetime | None]


def read_line(text: str, tx: bool) -> Read | str | None:
    """(local time, bytes, error, name, reception time) of a line kept, a word of the reason
    for a line rejected, None for a line left out."""
    if not text:
        return None
    m = HEAD.match(text)
    try:
        local = dt.datetime(*map(int, m.groups()[:6]), int(m.group(7)) * 1000) if m else None
    except ValueError:
        local = None
    if local is None:
        return "time"
    level = LEVEL.match(text, 23)
    if not level:
        return "level"
    error = level.group(1) == "ERROR"
    if level.group(1) == "INFO":
        if any(s in text for s in ("Bytes/sec", " Segment ", "SEND TIMEOUT")):
            return None
    elif not error:
        return None
    tokens = [t for t in text[level.end() :].split(" ") if t]
    if not (len(tokens) >= 2 and tokens[0].startswith("(") and tokens[1] == "Bytes)"):
        return (local, 0, True, b"", None) if error else None
    if not COUNT.fullmatch(tokens[0][1:]):
        return "byte count"
    if len(tokens) < 4:
        return "ends before the file name"
    name = tokens[3].encode("utf-8", "surrogateescape")
    try:
        name.decode("utf-8")
    except UnicodeDecodeError:
        return "UTF-8"
    fields = tokens[3].split(":")
    received = None
    if len(fields) >= 7 and STAMP.fullmatch(fields[6]):
        try:
            received = dt.datetime.strptime(fields[6], "%Y%m%d%H%M%S").replace(tzinfo=UTC)
        except ValueError:
            received = None
    if tx and received is None and not error:
        return "reception stamp"
    return local, int(tokens[0][1:]), error, name, received


def to_utc(
    local: dt.datetime, zone: ZoneInfo, twice: dict[dt.datetime, tuple[dt.datetime, bool]]
) -> int:
    """Epoch ms of a local time: in a repeated hour, the first pass until the times go back
    by more than a minute; in a gap, the offset from before it."""
    fold = 0
    first = local.replace(tzinfo=zone, fold=0).utcoffset()
    second = local.replace(tzinfo=zone, fold=1).utcoffset()
    assert first is not None and second is not None
    if first > second:  # the hour when clocks go back
        hour = local.replace(minute=0, second=0, microsecond=0)
        latest, repeat = twice.get(hour, (local, False))
        repeat = repeat or local < latest - dt.timedelta(minutes=1)
        twice[hour] = (latest if repeat else max(latest, local), repeat)
        fold = int(repeat)
    return (local.replace(tzinfo=zone, fold=fold) - EPOCH) // MS


def parse(lines: list[bytes], direction: str = "tx", cuts: list[int] | None = None) -> Parsed:
    """The parser's output for ``lines``, fed as chunks cut before the line indexes ``cuts``;
    the chunks' results put together."""
    parser = MetpxParser(MONTREAL, direction)
    bounds = [0, *(cuts or []), len(lines)]
    parts = []
    for a, b in itertools.pairwise(bounds):
        data = b"".join(line + b"\n" for line in lines[a:b])
        parts.append(parser.parse(np.frombuffer(data, dtype=np.uint8), "x.log", a + 1))
    return Parsed(
        Columns.concat([p.columns for p in parts]),
        *(sum(getattr(p, k) for p in parts) for k in ("lines", "kept", "skipped", "rejected")),
        [r for p in parts for r in p.rejects],
    )


def same(got: Columns, want: Columns) -> None:
    assert got.names == want.names
    for name, col in want.items():
        assert got[name].dtype.kind == col.dtype.kind, name
        np.testing.assert_array_equal(got[name], col, err_msg=name)


def check(lines: list[bytes], direction: str = "tx", cuts: list[int] | None = None) -> Parsed:
    """Parse, compare with the reference, and return what the parser gave."""
    want = reference(lines, MONTREAL, direction)
    got = parse(lines, direction, cuts)
    same(got.columns, want["columns"])
    assert got.lines == len(lines)
    assert got.kept == len(want["columns"])
    assert got.skipped == len(want["skipped"])
    assert [r["line"] for r in got.rejects] == [n for n, _ in want["rejected"]]
    for r, (_, word) in zip(got.rejects, want["rejected"], strict=True):
        assert word.lower() in r["reason"].lower(), (r, word)
        assert r["kind"] == "reject" and r["file"] == "x.log"
    assert got.rejected == len(got.rejects)
    return got


T = "2026-11-29 00:24:36,616"
NAME = "SACN31_CWAO_290524___0006:file\\:CWAO:SA:3:Direct:20261129052436"
GRIB = "CMC_GLB_TMP_ISBL_500_P012.grib2:cmc:CMC:GRIB:5:Direct:20261129052431"

KEPT = [
    f"{T} [INFO] (130 Bytes) Bulletin {NAME}  delivered",
    f"{T} [INFO] (48211 Bytes) File {GRIB} delivered to ftp://px@host.example.org//data/in",
    f"{T} [INFO] (5 Bytes) File {GRIB} delivered to ftp://px@host//data/secure",
    f"{T} [ERROR] (2048 Bytes) File {GRIB} not delivered: Connection refused",
    f"{T} [ERROR] (2048 Bytes) File no_stamp.grib2 not delivered: Connection refused",
    f"{T} [ERROR] Connection refused by host.example.org",
    f"{T} [INFO]  (7  Bytes)  File  {GRIB}  delivered",
    f"{T} [INFO] (0 Bytes) File caf\u00e9:a:b:c:d:e:20261129052436 delivered",
    "2026-11-29 00:24:36,000 [INFO] (1 Bytes) File a:b:c:d:e:f:20261129052436:more delivered",
]
SKIPPED = [
    f"{T} [INFO] 48211 Bytes/sec",
    f"{T} [INFO] (48211 Bytes) File {GRIB} delivered in 0.5 s: 96422 Bytes/sec",
    f"{T} [INFO] (130 Bytes) Segment 3 of {GRIB}",
    f"{T} [INFO] (130 Bytes) File {GRIB} SEND TIMEOUT",
    f"{T} [INFO] sender started",
    f"{T} [WARNING] (130 Bytes) File {GRIB} queued again",
    f"{T} [DEBUG] (130 Bytes) File {GRIB} delivered",
    f"{T} [CRITICAL] disk full",
    f"{T} [INFO]",
    "",
]
REJECTED = [
    "Traceback (most recent call last):",
    "2026-11-29 00:24:3",
    "2026-02-30 00:24:36,616 [INFO] (130 Bytes) File x delivered",
    "0000-11-29 00:24:36,616 [INFO] (130 Bytes) File x delivered",
    "2026-11-29 00:24:36.616 [INFO] (130 Bytes) File x delivered",
    f"{T} INFO (130 Bytes) File {GRIB} delivered",
    f"{T} [INFO](130 Bytes) File {GRIB} delivered",
    f"{T}",
    f"{T} [INFO] (12x Bytes) File {GRIB} delivered",
    f"{T} [INFO] (-5 Bytes) File {GRIB} delivered",
    f"{T} [INFO] (1234567890123456789 Bytes) File {GRIB} delivered",
    f"{T} [ERROR] (1,024 Bytes) File {GRIB} not delivered",
    f"{T} [INFO] (130 Bytes) Bulletin",
    f"{T} [INFO] (130 Bytes) Bulletin ",
    f"{T} [INFO] (130 Bytes) File plain.grib2 delivered",
    f"{T} [INFO] (130 Bytes) File a:b:c:d:e:f:2026112905243X delivered",
    f"{T} [INFO] (130 Bytes) File a:b:c:d:e:f:20261329052436 delivered",
    f"{T} [INFO] (130 Bytes) File a:b:c:d:e:f: delivered",
]


def lines_of(texts: list[str]) -> list[bytes]:
    return [t.encode("utf-8", "surrogateescape") for t in texts]


def test_every_shape_kind_and_fault_as_the_reference_reads_them() -> None:
    lines = [
        *lines_of(KEPT + SKIPPED + REJECTED),
        f"{T} [INFO] (3 Bytes) File bad\xff:a:b:c:d:e:20261129052436 delivered".encode("latin-1"),
        f"{T} [INFO] (3 Bytes) File {GRIB} delivered to /d\xff".encode("latin-1"),  # no matter
    ]
    got = check(lines)
    assert (got.kept, got.skipped, got.rejected) == (len(KEPT) + 1, len(SKIPPED), len(REJECTED) + 1)


@pytest.mark.parametrize(
    "odd",
    [b"\xc0\x80", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xe2\x82", b"\xf0\x9f\x98\x80",
     b"\xe2\x82\xac", b"\xc3", b"\x80", b"\xef\xbf\xbf", b"\xf4\x8f\xbf\xbf"],
)  # fmt: skip
def test_names_are_utf8_as_python_decodes_it(odd: bytes) -> None:
    name = b"a" + odd + b":b:c:d:e:f:20261129052436"
    check([T.encode() + b" [INFO] (1 Bytes) File " + name + b" delivered"])


def test_the_values_of_a_delivery_by_hand() -> None:
    got = check(lines_of(KEPT[:6]))
    c = got.columns
    # 00:24:36.616 EST is 05:24:36.616 UTC; received 05:24:36 and 05:24:31
    assert c["time"][0] == (dt.datetime(2026, 11, 29, 5, 24, 36, 616000, UTC) - EPOCH) // MS
    assert c["latency"][:4].tolist() == pytest.approx([0.616, 5.616, 5.616, 5.616])
    assert c["bytes"].tolist() == [130, 48211, 5, 2048, 2048, 0]
    assert c["error"].tolist() == [0, 0, 0, 1, 1, 1]
    assert math.isnan(c["latency"][4]) and math.isnan(c["latency"][5])
    assert c["name"][0] == NAME.encode() and c["name"][5] == b""
    assert c["name"].dtype == np.dtype(f"S{len(GRIB)}")  # the longest name of the chunk
    assert c["line"].tolist() == [1, 2, 3, 4, 5, 6]


def test_a_receiver_log_has_no_latency_and_needs_no_stamp() -> None:
    lines = lines_of([
        f"{T} [INFO] (130 Bytes) Ingested {NAME} from am://cwao",
        f"{T} [INFO] (130 Bytes) Ingested plain_name from am://cwao",
        f"{T} [ERROR] (130 Bytes) Ingest plain_name failed: bad header",
        *REJECTED[-5:],
    ])  # fmt: skip
    got = check(lines, "rx")
    assert got.kept == 7 and got.rejected == 1  # only the name-less line
    assert np.isnan(got.columns["latency"]).all()


def test_the_reasons_say_what_was_expected_and_found() -> None:
    got = parse(lines_of(REJECTED))
    reasons = [r["reason"] for r in got.rejects]
    assert reasons[0] == (
        "expected the time 'YYYY-MM-DD HH:MM:SS,mmm' at the start of the line, found "
        "'Traceback (most recent '"
    )
    assert reasons[1].endswith("found '2026-11-29 00:24:3' (the line is cut short)")
    assert reasons[2].endswith("found '2026-02-30 00:24:36,616', not a valid date")
    assert reasons[5] == "expected ' [LEVEL] ' after the time, found ' INFO (130 Bytes) Fi'"
    assert reasons[7] == "expected ' [LEVEL] ' after the time, found the end of the line"
    assert reasons[8].endswith("found '(12x Bytes)'")
    assert "7th space-separated field" in reasons[12]
    assert reasons[14] == (
        "the file name has no reception stamp (7th ':' field): 'plain.grib2' has only 1 field"
    )
    assert reasons[15].endswith("expected YYYYMMDDHHMMSS, found '2026112905243X'")
    assert got.rejects[0]["raw"] == REJECTED[0]


def test_raw_lines_are_escaped() -> None:
    raw = f"{T} [INFO] (3 Bytes) File bad\xff\t:a:b:c:d:e:1 delivered".encode("latin-1")
    (reject,) = parse([raw]).rejects
    assert reject["raw"] == f"{T} [INFO] (3 Bytes) File bad\\xff\\t:a:b:c:d:e:1 delivered"
    assert reject["reason"] == "the file name is not valid UTF-8: 'bad\\xff\\t:a:b:c:d:e:1'"


def at(day: str, times: list[str], name: str = GRIB) -> list[bytes]:
    return lines_of([f"{day} {t} [INFO] (1 Bytes) File {name} delivered" for t in times])


# 2026-11-01 in Montreal: 01:00 to 02:00 happens twice (EDT, then EST)
FALL_BACK = at("2026-11-01", [
    "00:59:59,000", "01:00:00,000", "01:30:00,000",
    "01:29:59,500",  # a line written a little late: still the first pass
    "01:59:59,999",
    "01:00:00,500", "01:15:00,000", "01:59:00,000",  # the second pass
    "01:58:00,000",  # a little late again: still the second pass
    "02:00:00,000", "02:30:00,000",
])  # fmt: skip


def utc_ms(*args: int) -> int:
    return (dt.datetime(*args, tzinfo=UTC) - EPOCH) // MS


def test_the_repeated_hour_first_pass_then_second_when_times_go_back() -> None:
    got = check(FALL_BACK)
    assert got.columns["time"].tolist() == [
        utc_ms(2026, 11, 1, 4, 59, 59),
        utc_ms(2026, 11, 1, 5, 0, 0),
        utc_ms(2026, 11, 1, 5, 30, 0),
        utc_ms(2026, 11, 1, 5, 29, 59, 500_000),
        utc_ms(2026, 11, 1, 5, 59, 59, 999_000),
        utc_ms(2026, 11, 1, 6, 0, 0, 500_000),
        utc_ms(2026, 11, 1, 6, 15, 0),
        utc_ms(2026, 11, 1, 6, 59, 0),
        utc_ms(2026, 11, 1, 6, 58, 0),
        utc_ms(2026, 11, 1, 7, 0, 0),
        utc_ms(2026, 11, 1, 7, 30, 0),
    ]


def test_the_repeated_hour_without_a_step_back_is_the_first_pass() -> None:
    got = check(at("2026-11-01", ["01:10:00,000", "01:40:00,000"]))
    assert got.columns["time"].tolist() == [utc_ms(2026, 11, 1, 5, 10), utc_ms(2026, 11, 1, 5, 40)]


def test_the_spring_gap_takes_the_offset_from_before_it() -> None:
    # 2026-03-08 in Montreal: clocks go from 02:00 EST to 03:00 EDT; 02:30 never happened
    got = check(at("2026-03-08", ["01:59:59,000", "02:30:00,000", "03:00:00,000"]))
    assert got.columns["time"].tolist() == [
        utc_ms(2026, 3, 8, 6, 59, 59),
        utc_ms(2026, 3, 8, 7, 30),
        utc_ms(2026, 3, 8, 7, 0),
    ]


def test_a_zone_whose_offset_changes_inside_an_hour() -> None:
    # Lord Howe Island moves its clocks by half an hour: on 2026-04-05 from 02:00 back to
    # 01:30, so 01:30 to 02:00 happens twice, and the offset changes in the middle of an hour
    zone = ZoneInfo("Australia/Lord_Howe")
    lines = at("2026-04-05", ["01:20:00,000", "01:40:00,000", "01:50:00,000", "01:35:00,000",
                              "01:45:00,000", "02:10:00,000"])  # fmt: skip
    want = reference(lines, zone, "tx")["columns"]
    data = np.frombuffer(b"".join(x + b"\n" for x in lines), dtype=np.uint8)
    got = MetpxParser(zone, "tx").parse(data, "x.log", 1).columns
    same(got, want)


@pytest.mark.parametrize("size", [1, 2, 3, 5])
def test_results_do_not_depend_on_where_the_chunks_are_cut(size: int) -> None:
    lines = [*FALL_BACK, *lines_of(KEPT + SKIPPED + REJECTED), *FALL_BACK]
    got = check(lines, cuts=list(range(size, len(lines), size)))
    whole = parse(lines)
    same(got.columns, whole.columns)
    assert got.rejects == whole.rejects


def test_an_empty_chunk_and_a_chunk_of_nothing_kept() -> None:
    parser = MetpxParser("UTC", "tx")
    empty = parser.parse(np.frombuffer(b"", dtype=np.uint8), "x.log", 1)
    assert (empty.lines, len(empty.columns), empty.columns["name"].dtype) == (0, 0, "S1")
    data = np.frombuffer(b"\n".join(lines_of(SKIPPED[:-1])), dtype=np.uint8)  # no last "\n"
    got = parser.parse(data, "x.log", 1)
    assert (got.lines, got.kept, got.skipped) == (len(SKIPPED) - 1, 0, len(SKIPPED) - 1)


def test_a_direction_other_than_tx_or_rx_is_refused() -> None:
    with pytest.raises(ValueError, match="direction must be 'tx' or 'rx', got 'up'"):
        MetpxParser("UTC", "up")
