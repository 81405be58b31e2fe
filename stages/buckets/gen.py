"""Sample MetPX (Sundew) sender and receiver logs: ``pipeline gen metpx DIR``.

Writes ``DIR/<machine>/tx_<client>.log`` and ``DIR/<machine>/rx_<client>.log`` over the
``--hours`` before ``--end``, as Sundew's Python logging wrote them
(``%(asctime)s [%(levelname)s] %(message)s``, the time local to ``--tz``), in time order:

  tx  2026-11-29 00:24:36,616 [INFO] (130 Bytes) Bulletin <name>  delivered
      2026-11-29 00:24:37,002 [INFO] (48211 Bytes) File <name> delivered to ftp://px@host//data/in
      2026-11-29 00:24:37,004 [INFO] 48211 Bytes/sec
      2026-11-29 00:24:37,100 [INFO] Segment 2/5 of <name> (1024 Bytes) sent
      2026-11-29 00:24:37,300 [WARNING] SEND TIMEOUT on <name> (31 Bytes) after 30 s
      2026-11-29 00:24:38,120 [ERROR] (2048 Bytes) File <name> not delivered: Connection refused
  rx  2026-11-29 00:24:35,900 [INFO] (130 Bytes) Ingested <name> from am://cwao
      2026-11-29 00:24:36,000 [ERROR] (77 Bytes) Ingest <name> failed: checksum mismatch

A product's name is ``name:source:origin:type:priority:Direct:YYYYMMDDHHMMSS``; the last
field is its reception time, UTC. A delivery's latency is its log time (to the second, made
UTC) minus that stamp: a second or two mostly; a few minutes each hour a client's traffic
bursts to 5 times its rate and latency climbs to 20-120 s, then drains; ~0.5% of files come
minutes to an hour late. Errors are ~1% of tx lines (more in bursts), ~0.5% of rx lines. About
one line in 10,000 is malformed, as logs of a crashed or misconfigured sender are: cut short,
a garbled time, a name short of fields, or a byte that is not UTF-8.
"""

from __future__ import annotations

import argparse
import functools
import math
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from random import Random
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import numpy.typing as npt
from rich.console import Console
from rich.progress import MofNCompleteColumn, Progress

from pipeline.errors import UsageError

DEFAULT_CLIENTS = "cmc-ftp,nws-bulletins,ukmet-grib,dwd-radar"
DEFAULT_MACHINES = "pxatx1,pxatx2"
DEFAULT_TZ = "America/Montreal"

#: how much busier a client is in a burst minute than in an ordinary one
BURST_FACTOR = 5
#: shares of events (a line, or a series of segments and its delivery): malformed lines,
#: send timeouts, segmented products; errors depend on the minute
MALFORMED = 0.0001
TIMEOUT = 0.003
SEGMENTED = 0.006
TX_ERROR, TX_BURST_ERROR = 0.007, 0.03
RX_ERROR, RX_BURST_ERROR = 0.004, 0.012
#: deliveries followed by a throughput line; files that come late
THROUGHPUT = 0.1
LATE = 0.005
#: latency of an ordinary delivery: lognormal, median ~1.5 s, 99% under ~10 s
_LATENCY_MU, _LATENCY_SIGMA = math.log(1.5), 0.8

_BATCH = 50_000  # lines drawn, formatted and written at a time
#: what a tx event is, as drawn
_BROKEN, _TIMED_OUT, _FAILED, _SEGMENTED, _DELIVERED = range(5)


@dataclass(frozen=True)
class Window:
    """The span the logs cover: UTC seconds, whole minutes, ``[start, end)``."""

    start: int
    end: int
    tz: ZoneInfo

    @classmethod
    def ending(cls, end: str | None, hours: int, tz_name: str) -> Window:
        """The ``hours`` before ``end`` (local to ``tz_name``; None: this hour's start).

        >>> Window.ending("2026-11-01 06:00", 6, "America/Montreal").describe()
        '2026-11-01 01:00 EDT to 2026-11-01 06:00 EST (6 h, America/Montreal)'
        """
        try:
            tz = ZoneInfo(tz_name)
        except (ZoneInfoNotFoundError, ValueError):
            msg = f"--tz {tz_name!r} is not a time zone: give an IANA name like {DEFAULT_TZ}"
            raise UsageError(msg) from None
        if hours < 1:
            raise UsageError(f"--hours {hours}: give 1 or more")
        if end is None:
            local = datetime.now(tz).replace(minute=0, second=0, microsecond=0)
        else:
            try:
                local = datetime.strptime(end, "%Y-%m-%d %H:%M").replace(tzinfo=tz)
            except ValueError:
                msg = f"--end {end!r} is not a local time like '2026-11-29 06:00'"
                raise UsageError(msg) from None
        # seconds since the epoch, so that a window across a DST change is its true length
        stop = int(local.timestamp())
        return cls(stop - hours * 3600, stop, tz)

    @property
    def minutes(self) -> int:
        return (self.end - self.start) // 60

    def describe(self) -> str:
        def local(t: int) -> str:
            return datetime.fromtimestamp(t, self.tz).strftime("%Y-%m-%d %H:%M %Z")

        hours = (self.end - self.start) / 3600
        return f"{local(self.start)} to {local(self.end)} ({hours:g} h, {self.tz.key})"


@dataclass(frozen=True)
class Traffic:
    """A client's traffic, minute by minute over the window: the same on every machine
    (they share its load) and on both sides (what comes in goes out)."""

    #: relative rate of each minute (1, or BURST_FACTOR in a burst)
    weights: npt.NDArray[np.int64]
    #: latency added in each minute: ``base + slope * ms into the minute``, in seconds
    base: npt.NDArray[np.float64]
    slope: npt.NDArray[np.float64]

    @classmethod
    def of(cls, window: Window, client: str, seed: int) -> Traffic:
        rng = Random(f"{seed}-{client}-bursts")
        n = window.minutes
        weights, base, slope = [1] * n, [0.0] * n, [0.0] * n
        for hour in range(0, n, 60):
            length = rng.randint(1, 3)
            first = hour + rng.randrange(max(1, min(60, n - hour) - length))
            peak = rng.uniform(20.0, 120.0)
            # the queue grows through the burst, then drains as long again
            for j in range(length):
                if first + j < n:
                    weights[first + j] = BURST_FACTOR
                    base[first + j] = peak * j / length
                    slope[first + j] = peak / (length * 60_000)
            for j in range(length):
                m = first + length + j
                if m < n and weights[m] == 1:
                    base[m] = peak * (1 - j / length)
                    slope[m] = -peak / (length * 60_000)
        return cls(np.array(weights, np.int64), np.array(base), np.array(slope))

    def times(self, window: Window, lines: int, gen: np.random.Generator) -> npt.NDArray[np.int64]:
        """``lines`` sorted times (UTC milliseconds) spread by the minutes' weights."""
        # a point on a line where each minute is as long as its weight, then put back
        ends = np.cumsum(self.weights) * 60_000
        virtual = np.sort(gen.integers(0, ends[-1], lines))
        minute = np.searchsorted(ends, virtual, side="right")
        weight = self.weights[minute]
        into = (virtual - (ends[minute] - weight * 60_000)) // weight
        return window.start * 1000 + minute * 60_000 + into


@functools.cache
def _seconds_millis() -> list[str]:
    """``"SS,mmm"`` for each millisecond of a minute: a log time is a minute's prefix and one
    of these, so no time is formatted line by line."""
    return [f"{s:02d},{ms:03d}" for s in range(60) for ms in range(1000)]


def _local_minutes(window: Window) -> list[str]:
    """``"YYYY-MM-DD HH:MM:"`` local to the window's zone, of each of its minutes.

    Every zone's offset from UTC has been whole minutes since 1972, so a local minute starts
    with a UTC one and the seconds need no converting."""
    return [datetime.fromtimestamp(window.start + m * 60, window.tz).strftime("%Y-%m-%d %H:%M:")
            for m in range(window.minutes)]  # fmt: skip


# tables, not format specs: ``f"{n:02d}"`` costs more than all the rest of a name
_TWO_DIGITS = [f"{i:02d}" for i in range(100)]
_SEQUENCES = [f"{i:04d}" for i in range(10_000)]


class _Stamps:
    """Reception stamps ``YYYYMMDDHHMMSS`` (UTC) and the parts names are made of, by minute."""

    def __init__(self) -> None:
        #: ``YYYYMMDDHHMM`` by minute since the epoch: what ``minute`` has made
        self.minutes: dict[int, str] = {}
        self._runs: dict[int, str] = {}

    def minute(self, second: int) -> str:
        """``YYYYMMDDHHMM`` of the minute ``second`` (UTC) falls in."""
        key = second // 60
        got = self.minutes.get(key)
        if got is None:
            got = self.minutes[key] = time.strftime("%Y%m%d%H%M", time.gmtime(key * 60))
        return got

    def run(self, second: int) -> str:
        """``YYYYMMDDHH`` of the newest model run out by then: runs every 6 h, 4 h to come out."""
        key = (second - 4 * 3600) // 21600
        got = self._runs.get(key)
        if got is None:
            got = self._runs[key] = time.strftime("%Y%m%d%H", time.gmtime(key * 21600))
        return got


_FH = [f"{h:03d}" for h in range(0, 241, 3)]
_CMC_VARS = ["TT_ISBL_500", "TT_ISBL_850", "HGT_ISBL_500", "UGRD_TGL_10", "PRATE_SFC_0"]
_UK_VARS = ["temp", "wind", "mslp", "precip"]
_RADARS = ["XFT", "WKR", "XAM", "WMN", "XLA"]


# A file's name from its reception second and two draws: a forecast hour and a variable or site.
def _cmc(st: _Stamps, second: int, fh: int, pick: int) -> str:
    var = _CMC_VARS[pick % len(_CMC_VARS)]
    return f"CMC_GLB_{var}_ps30km_{st.run(second)}_P{_FH[fh]}.grib2"


def _nws(st: _Stamps, second: int, fh: int, pick: int) -> str:
    run = st.run(second)
    return f"gfs.{run[:8]}.t{run[8:]}z.pgrb2.0p25.f{_FH[fh]}"


def _ukmet(st: _Stamps, second: int, fh: int, pick: int) -> str:
    var = _UK_VARS[pick % len(_UK_VARS)]
    return f"ukmet_glob_{var}_{st.run(second)}_T{_FH[fh]}.grib2"


def _radar(st: _Stamps, second: int, fh: int, pick: int) -> str:
    site = _RADARS[pick % len(_RADARS)]
    return f"RADAR_{site}_{st.minute(second - second % 300)}_DBZH.h5"


@dataclass(frozen=True)
class _Family:
    """A kind of file product: how its name starts, the fields after it, where it is from."""

    make: Callable[[_Stamps, int, int, int], str]
    fields: str  # ":source:origin:type:priority:Direct:"
    source: str


_FAMILIES = [
    _Family(_cmc, ":cmc:CMC:GRIB:5:Direct:", "sftp://px@dd.cmc.example.org"),
    _Family(_nws, ":nws:KWBC:GRIB:5:Direct:", "ftp://anonymous@ftp.ncep.example.org"),
    _Family(_ukmet, ":ukmet:EGRR:GRIB:5:Direct:", "sftp://px@gts.metoffice.example.org"),
    _Family(_radar, ":dwd:EDZW:RADAR:2:Direct:", "ftp://px@opendata.dwd.example.org"),
]
#: WMO headings (TTAAii) by origin, in the order of the families above
_HEADINGS = [
    ("CWAO", ["SACN31", "SACN43", "SRCN40", "FTCN31", "WOCN11", "FXCN01"]),
    ("KWBC", ["SAUS70", "FPUS51", "WWUS81", "SXUS20", "FTUS80"]),
    ("EGRR", ["SMUK01", "FTUK31", "SAUK31", "SXUK99"]),
    ("EDZW", ["SXDL99", "SMDL01", "SADL33", "FTDL31"]),
]
_HOMES = ["cmc", "nws", "ukmet", "dwd"]


@dataclass(frozen=True)
class _Heading:
    head: str  # "SACN31_CWAO_"
    fields: str  # ":file\:CWAO:SA:3:Direct:"
    source: str  # "am://cwao"


def _headings(origin: str, names: list[str]) -> list[_Heading]:
    # warnings (WO, WW) have priority 1: they go first in the queues
    return [
        _Heading(
            f"{n}_{origin}_",
            f":file\\:{origin}:{n[:2]}:{1 if n[:2] in ('WO', 'WW') else 3}:Direct:",
            f"am://{origin.lower()}",
        )
        for n in names
    ]


def _products(client: str, rng: Random) -> Callable[[int, bool, int, int], tuple[str, str]]:
    """A client's products, bulletins and files, mostly of its own centre: returns
    ``make(second, bulletin, pick, fh)``, the name of a product received at ``second`` (UTC)
    and where it came from; ``pick`` and ``fh`` are random draws that choose what it is."""
    home = next((i for i, h in enumerate(_HOMES) if client.startswith(h)), None)
    if home is None:
        home = rng.randrange(len(_HOMES))
    # its own centre's products three times as often as each other one's
    families = [*[_FAMILIES[home]] * 3, *_FAMILIES]
    headings = [h for i, (o, names) in enumerate(_HEADINGS)
                for h in _headings(o, names) * (3 if i == home else 1)]  # fmt: skip
    n_families, n_headings = len(families), len(headings)
    stamps = _Stamps()
    known, minute_of, two, seqs = stamps.minutes, stamps.minute, _TWO_DIGITS, _SEQUENCES
    seq = 0

    # a closure, not a method: it runs for every line
    def make(second: int, bulletin: bool, pick: int, fh: int) -> tuple[str, str]:
        nonlocal seq
        minute = known.get(second // 60) or minute_of(second)
        if bulletin:
            h = headings[pick % n_headings]
            seq = seq + 1 if seq < 9999 else 0
            return (
                f"{h.head}{minute[6:]}___{seqs[seq]}{h.fields}{minute}{two[second % 60]}",
                h.source,
            )
        f = families[pick % n_families]
        name = f.make(stamps, second, fh, pick >> 4)
        return f"{name}{f.fields}{minute}{two[second % 60]}", f.source

    return make


_TX_REASONS = ["Connection refused", "Connection timed out", "No route to host",
               "550 Permission denied", "452 Insufficient storage space"]  # fmt: skip
_RX_REASONS = ["checksum mismatch", "bad AHL header", "truncated product", "duplicate"]
_DIGITS = [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18]  # of a log time's first 19 chars


def _malformed(rng: Random, ts: str, before: str, name: str, after: str) -> str:
    """The INFO line ``ts before+name+after`` broken as real logs are."""
    kind = rng.randrange(4)
    if kind == 0:  # cut short (a full disk, a killed sender): inside the name
        return f"{ts} [INFO] {before}{name[: rng.randrange(1, len(name))]}\n"
    if kind == 1:  # a garbled time, in the part readers keep (they drop the milliseconds)
        at = rng.choice(_DIGITS)
        ts = ts[:at] + rng.choice("OlI?x") + ts[at + 1 :]
    elif kind == 2:  # a name short of fields
        name = ":".join(name.split(":")[: rng.randint(1, 5)])
    else:  # a byte that is not UTF-8 (a Latin-1 e-acute), kept by surrogateescape
        at = rng.randrange(1, name.index(":"))
        name = f"{name[:at]}\udce9{name[at:]}"
    return f"{ts} [INFO] {before}{name}{after}\n"


@dataclass
class _Chunk:
    """Random columns for a batch of lines, drawn at once; the loop only formats."""

    ts: list[str]  # log times
    minute: npt.NDArray[np.int64]  # of the window
    within: npt.NDArray[np.int64]  # milliseconds into the minute
    bulletin: npt.NDArray[np.bool_]
    size: npt.NDArray[np.int64]
    pick: npt.NDArray[np.int64]  # what product, error reason, ...
    fh: npt.NDArray[np.int64]  # forecast hour, segments

    @classmethod
    def draw(
        cls,
        times: npt.NDArray[np.int64],
        window: Window,
        gen: np.random.Generator,
        minutes: list[str],
    ) -> _Chunk:
        into = times - window.start * 1000
        minute = into // 60_000
        within = into - minute * 60_000
        clock = _seconds_millis()
        ts = [minutes[m] + clock[w] for m, w in zip(minute.tolist(), within.tolist(), strict=True)]
        k = len(times)
        bulletin = gen.random(k) < 0.5
        # bulletins of a few hundred bytes, files of tens of kilobytes to megabytes
        size = np.where(bulletin, gen.lognormal(6.0, 1.0, k) + 20,
                        gen.lognormal(10.5, 1.5, k) + 100).astype(np.int64)  # fmt: skip
        return cls(ts, minute, within, bulletin, size, gen.integers(0, 1 << 20, k),
                   gen.integers(0, len(_FH), k))  # fmt: skip


class _Writer:
    """Lines gathered in batches and written as bytes (any bad byte kept as it is)."""

    def __init__(self, path: Path, advance: Callable[[int], None]) -> None:
        self.f = path.open("wb")
        self.advance = advance
        self.lines: list[str] = []
        self.count = 0

    def flush(self) -> None:
        self.f.write("".join(self.lines).encode("utf-8", "surrogateescape"))
        self.count += len(self.lines)
        self.advance(len(self.lines))
        self.lines.clear()

    def close(self) -> None:
        self.flush()
        self.f.close()


def _nothing(lines: int) -> None:
    """Told of nothing: no progress to show."""


def _generators(rng: Random) -> np.random.Generator:
    # numpy draws the columns, many times faster than line by line; seeded from ``rng`` so
    # that one seed still gives the same files
    return np.random.default_rng(rng.getrandbits(128))


def write_tx(
    path: Path,
    window: Window,
    traffic: Traffic,
    client: str,
    lines: int,
    rng: Random,
    advance: Callable[[int], None] = _nothing,
) -> int:
    """Write a sender log of ``lines`` lines; returns how many it wrote."""
    gen = _generators(rng)
    make = _products(client, rng)
    times = traffic.times(window, lines, gen)
    minutes = _local_minutes(window)
    ftp = f" delivered to ftp://px@{client}.example.org//data/in\n"
    out = _Writer(path, advance)
    pending: list[str] = []  # what the next lines say after their time, last first
    try:
        for lo in range(0, lines, _BATCH):
            tm = times[lo : lo + _BATCH]
            c = _Chunk.draw(tm, window, gen, minutes)
            k = len(tm)
            latency = (gen.lognormal(_LATENCY_MU, _LATENCY_SIGMA, k) + traffic.base[c.minute]
                       + traffic.slope[c.minute] * c.within)  # fmt: skip
            late = gen.random(k) < LATE
            latency[late] = 120 * 30 ** gen.random(int(late.sum()))  # 2 minutes to an hour
            arrival = (tm - (latency * 1000).astype(np.int64)) // 1000
            # the kind of an event is where a draw falls: malformed, timeout, error, segmented
            r = gen.random(k)
            to_error = (
                MALFORMED
                + TIMEOUT
                + np.where(traffic.weights[c.minute] == 1, TX_ERROR, TX_BURST_ERROR)
            )
            kind = np.select([r < MALFORMED, r < MALFORMED + TIMEOUT, r < to_error,
                              r < to_error + SEGMENTED],
                             [_BROKEN, _TIMED_OUT, _FAILED, _SEGMENTED], _DELIVERED)  # fmt: skip
            rate = np.where(gen.random(k) < THROUGHPUT, c.size / (0.05 + gen.random(k)) + 1, 0)
            buf = out.lines
            for ts, second, what, bulletin, size, pick, fh, speed in zip(
                c.ts, arrival.tolist(), kind.tolist(), c.bulletin.tolist(), c.size.tolist(),
                c.pick.tolist(), c.fh.tolist(), rate.astype(np.int64).tolist(), strict=True,
            ):  # fmt: skip
                if pending:
                    buf.append(ts + pending.pop())
                    continue
                name, _ = make(second, bulletin, pick, fh)
                if what == _DELIVERED:
                    if bulletin:
                        buf.append(f"{ts} [INFO] ({size} Bytes) Bulletin {name}  delivered\n")
                    else:
                        buf.append(f"{ts} [INFO] ({size} Bytes) File {name}{ftp}")
                    if speed:  # the sender's rate, logged after some deliveries
                        pending.append(f" [INFO] {speed} Bytes/sec\n")
                elif what == _FAILED:
                    reason = _TX_REASONS[pick % len(_TX_REASONS)]
                    buf.append(f"{ts} [ERROR] ({size} Bytes) File {name} not delivered: {reason}\n")
                elif what == _TIMED_OUT:
                    buf.append(f"{ts} [WARNING] SEND TIMEOUT on {name} ({size} Bytes) after 30 s\n")
                elif what == _SEGMENTED:  # sent in pieces; the delivery is logged after the last
                    n = 2 + fh % 5
                    piece = max(1, size // n)
                    word, end = (" Bulletin ", "  delivered\n") if bulletin else (" File ", ftp)
                    pending.append(f" [INFO] ({size} Bytes){word}{name}{end}")
                    pending.extend(f" [INFO] Segment {j}/{n} of {name} ({piece} Bytes) sent\n"
                                   for j in range(n, 1, -1))  # fmt: skip
                    buf.append(f"{ts} [INFO] Segment 1/{n} of {name} ({piece} Bytes) sent\n")
                    continue
                else:
                    word, end = ("Bulletin ", "  delivered") if bulletin else ("File ", ftp[:-1])
                    buf.append(_malformed(rng, ts, f"({size} Bytes) {word}", name, end))
            out.flush()
    finally:
        out.close()
    return out.count


def write_rx(
    path: Path,
    window: Window,
    traffic: Traffic,
    client: str,
    lines: int,
    rng: Random,
    advance: Callable[[int], None] = _nothing,
) -> int:
    """Write a receiver log of ``lines`` lines; returns how many it wrote."""
    gen = _generators(rng)
    make = _products(client, rng)
    times = traffic.times(window, lines, gen)
    minutes = _local_minutes(window)
    out = _Writer(path, advance)
    try:
        for lo in range(0, lines, _BATCH):
            tm = times[lo : lo + _BATCH]
            c = _Chunk.draw(tm, window, gen, minutes)
            r = gen.random(len(tm))
            error = MALFORMED + np.where(traffic.weights[c.minute] == 1, RX_ERROR, RX_BURST_ERROR)
            kind = np.select([r < MALFORMED, r < error], [_BROKEN, _FAILED], _DELIVERED)
            buf = out.lines
            # the receiver stamps a product as it takes it in: the stamp is the log's second
            for ts, second, what, bulletin, size, pick, fh in zip(
                c.ts, (tm // 1000).tolist(), kind.tolist(), c.bulletin.tolist(),
                c.size.tolist(), c.pick.tolist(), c.fh.tolist(), strict=True,
            ):  # fmt: skip
                name, source = make(second, bulletin, pick, fh)
                if what == _DELIVERED:
                    buf.append(f"{ts} [INFO] ({size} Bytes) Ingested {name} from {source}\n")
                elif what == _FAILED:
                    reason = _RX_REASONS[pick % len(_RX_REASONS)]
                    buf.append(f"{ts} [ERROR] ({size} Bytes) Ingest {name} failed: {reason}\n")
                else:
                    before = f"({size} Bytes) Ingested "
                    buf.append(_malformed(rng, ts, before, name, f" from {source}"))
            out.flush()
    finally:
        out.close()
    return out.count


_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def _names(option: str, value: str, example: str) -> list[str]:
    names = value.split(",")
    for name in names:
        if not _NAME.fullmatch(name):
            msg = (
                f"{option}: {name!r} is not a name (letters, digits, '.', '_' and '-'); "
                f"give them comma separated, e.g. {option} {example}"
            )
            raise UsageError(msg)
    if len(set(names)) != len(names):
        raise UsageError(f"{option} {value!r}: a name is given twice")
    return names


def write_logs(
    folder: Path,
    window: Window,
    clients: Sequence[str],
    machines: Sequence[str],
    lines: int,
    seed: int,
    progress: Progress | None = None,
) -> list[tuple[Path, int]]:
    """Every machine's tx and rx log of every client; returns each file and its lines."""
    written = []
    for client in clients:
        traffic = Traffic.of(window, client, seed)
        for machine in machines:
            (folder / machine).mkdir(parents=True, exist_ok=True)
            for side, write in (("tx", write_tx), ("rx", write_rx)):
                path = folder / machine / f"{side}_{client}.log"
                advance = _nothing
                if progress is not None:
                    task = progress.add_task(f"{machine} {side}_{client}", total=lines)
                    advance = functools.partial(progress.advance, task)
                rng = Random(f"{seed}-{machine}-{client}-{side}")
                n = write(path, window, traffic, client, lines, rng, advance)
                written.append((path, n))
                print(f"{path}: {n:,} lines")
    return written


def _run(args: argparse.Namespace) -> int:
    window = Window.ending(args.end, args.hours, args.tz)
    clients = _names("--clients", args.clients, "cmc-ftp,dwd-radar")
    machines = _names("--machines", args.machines, DEFAULT_MACHINES)
    if args.lines < 1:
        raise UsageError(f"--lines {args.lines}: give 1 or more")
    folder = Path(args.dir)
    # a bar on a terminal; lines of text otherwise
    columns = (*Progress.get_default_columns(), MofNCompleteColumn())
    with Progress(*columns, console=Console(stderr=True),
                  disable=not sys.stderr.isatty()) as bar:  # fmt: skip
        written = write_logs(folder, window, clients, machines, args.lines, args.seed, bar)
    total = sum(n for _, n in written)
    print(f"wrote {total:,} lines in {len(written)} files to {folder}: {window.describe()}")
    return 0


def add_generator(kinds: Any) -> None:
    p = kinds.add_parser(
        "metpx",
        help="MetPX (Sundew) sender and receiver logs",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  pipeline gen metpx sample-data/metpx\n"
        "  pipeline gen metpx big --lines 1000000 --clients cmc-ftp --hours 24\n"
        "  pipeline gen metpx dst --end '2026-11-01 06:00' --hours 6   # across a DST change",
    )
    p.add_argument("dir", help="folder to write <machine>/{tx,rx}_<client>.log into")
    p.add_argument("--hours", type=int, default=24, help="hours the logs cover (default 24)")
    p.add_argument(
        "--end",
        metavar="'YYYY-MM-DD HH:MM'",
        help="when they end, local to --tz (default: the start of the current hour)",
    )
    p.add_argument(
        "--tz",
        default=DEFAULT_TZ,
        help=f"IANA time zone of the log times (default {DEFAULT_TZ}); stamps in names are UTC",
    )
    p.add_argument(
        "--clients",
        default=DEFAULT_CLIENTS,
        help=f"client names, comma separated (default {DEFAULT_CLIENTS})",
    )
    p.add_argument(
        "--machines",
        default=DEFAULT_MACHINES,
        help=f"machine names, comma separated (default {DEFAULT_MACHINES})",
    )
    p.add_argument("--lines", type=int, default=20000, help="lines per log file (default 20000)")
    p.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    p.set_defaults(handler=_run)
