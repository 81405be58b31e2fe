"""MetPX Sundew sender logs, a chunk at a time: a compiled parser of their lines into columns.

A sender writes Python logging lines, ``%(asctime)s [%(levelname)s] %(message)s``, the time
local to the machine's zone::

    2026-11-29 00:24:36,616 [INFO] (130 Bytes) Bulletin <name>  delivered
    2026-11-29 00:24:37,002 [INFO] (48211 Bytes) File <name> delivered to ftp://px@host//in
    2026-11-29 00:24:35,900 [INFO] (130 Bytes) Ingested <name> from am://cwao
    2026-11-29 00:24:40,002 [ERROR] (2048 Bytes) File <name> not delivered: Connection refused

where a name such as ``SACN31_CWAO_290524___0006:file\\:CWAO:SA:3:Direct:20261129052436``
ends in the time the product was received (UTC). The rules are the stats library's (MetPX
Sundew ``lib/stats``, 2007): a line counts if it is ``[INFO]`` with a byte count
``(N Bytes)`` and is not a throughput (``Bytes/sec``), ``" Segment "`` or ``SEND TIMEOUT``
line, or if it is ``[ERROR]``. Any other line with a time and a level is left out (counted
as skipped), and so is an empty line. Per line kept:

* ``time``: the log time, local in the zone, as UTC epoch milliseconds;
* ``bytes``: N of ``(N Bytes)``, 0 for an ERROR line without one;
* ``error``: 1 for an ERROR line, else 0;
* ``name``: the 7th space-separated field, the product's file name (empty for an ERROR line
  without a byte count, whose 7th field is just a word of the message);
* ``latency``: seconds from the reception stamp (the 7th ``:`` field of the name,
  ``YYYYMMDDHHMMSS``) to the log time, in a sender's (tx) log; NaN in a receiver's (rx). A
  tx delivery without a stamp is rejected (it has no latency to give); an ERROR line
  without one is kept, with NaN, for its error count.

One deliberate change: the original left out every line holding ``/sec``, which also drops
deliveries to a directory such as ``//data/secure``; here only ``Bytes/sec`` does.

A line that cannot be read (no valid time, no level, a byte count that is not a number, no
file name after it, a name that is not UTF-8, a tx delivery without a reception stamp) is
rejected with the reason and the raw line; nothing is fatal. Local times become UTC through
``zoneinfo`` (``LocalClock``), with a few look-ups per chunk.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from numba import njit

from pipeline import Columns
from stages.buckets.clock import LocalClock
from stages.wrstat import bytescan as B
from stages.wrstat.escape import go_escape
from stages.wrstat.parse import compiling_notice

# What the kernel says of each line
OK = 0
SKIPPED = 1
BAD_TIME = 2
BAD_LEVEL = 3
BAD_COUNT = 4
NO_NAME = 5
NO_STAMP = 6
NOT_UTF8 = 7

# ``aux`` of BAD_TIME
_SHAPE, _CUT, _RANGE = 0, 1, 2

#: ``stamp`` of a line whose name has no valid reception stamp
NO_TIME = np.iinfo(np.int64).min

#: the line's start, ``YYYY-MM-DD HH:MM:SS,mmm``: 0 where a digit goes, else the byte
_TEMPLATE = np.frombuffer(b"\0\0\0\0-\0\0-\0\0 \0\0:\0\0:\0\0,\0\0\0", dtype=np.uint8)


def _words(pattern: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Per little-endian word of ``pattern``: 0xFF where a digit goes (a 0 in the pattern),
    and the bytes expected elsewhere."""
    raw = np.frombuffer(pattern, dtype=np.uint8)
    digit = np.where(raw == 0, 0xFF, 0).astype(np.uint8)
    return digit.view("<u8").copy(), raw.view("<u8").copy()


_DIGIT_BYTES, _SEPARATORS = _words(_TEMPLATE.tobytes() + b" ")
_ZEROS = B.repeat(0x30)
_INFO = np.frombuffer(b"INFO", dtype=np.uint8)
_ERROR = np.frombuffer(b"ERROR", dtype=np.uint8)
_BYTES = np.frombuffer(b"Bytes)", dtype=np.uint8)
_PER_SEC = np.frombuffer(b"Bytes/sec", dtype=np.uint8)
_SEGMENT = np.frombuffer(b" Segment ", dtype=np.uint8)
_TIMEOUT = np.frombuffer(b"SEND TIMEOUT", dtype=np.uint8)
_DAYS = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], dtype=np.int64)


@njit(cache=True, nogil=True)
def count_lines(buf):  # type: ignore[no-untyped-def]
    n = 0
    for c in buf:
        n += c == 10
    return n + (1 if len(buf) and buf[-1] != 10 else 0)


@njit(cache=True, nogil=True, inline="always")
def _at(buf, p, lit):  # type: ignore[no-untyped-def]
    """Whether ``buf[p:]`` starts with ``lit``."""
    if p < 0 or p + len(lit) > len(buf):
        return False
    for k in range(len(lit)):  # noqa: SIM110 - all() over a generator does not compile
        if buf[p + k] != lit[k]:
            return False
    return True


@njit(cache=True, nogil=True, inline="always")
def _find3(buf, p, end, a, b, c):  # type: ignore[no-untyped-def]
    """The first ``p <= i < end`` with ``buf[i]`` one of ``a``, ``b``, ``c``, or ``end``."""
    pa = B.ONES * np.uint64(a)
    pb = B.ONES * np.uint64(b)
    pc = B.ONES * np.uint64(c)
    while p + 8 <= end:
        w = B.load8(buf, p)
        m = B.zero_bytes(w ^ pa) | B.zero_bytes(w ^ pb) | B.zero_bytes(w ^ pc)
        if m:
            return p + B.first(m)
        p += 8
    while p < end and buf[p] != a and buf[p] != b and buf[p] != c:
        p += 1
    return p


@njit(cache=True, nogil=True, inline="always")
def _epoch_days(y, m, d):  # type: ignore[no-untyped-def]
    """Days from 1970-01-01 to a date of the proleptic Gregorian calendar."""
    y = y - (1 if m <= 2 else 0)
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    return era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468


@njit(cache=True, nogil=True, inline="always")
def _number(buf, p, k):  # type: ignore[no-untyped-def]
    """The ``k`` digits at ``buf[p:]`` as a number (the caller knows they are digits)."""
    v = np.int64(0)
    for i in range(p, p + k):
        v = v * 10 + (np.int64(buf[i]) - 48)
    return v


@njit(cache=True, nogil=True, inline="always")
def _seconds(buf, p, gap):  # type: ignore[no-untyped-def]
    """The date and time whose digits start at ``buf[p]`` (``YYYY``, then ``MM``, ``DD``,
    ``hh``, ``mm``, ``ss``, each after ``gap`` separator bytes) as epoch seconds, or
    ``NO_TIME`` if it is not a valid one (year 1 on)."""
    y = _number(buf, p, 4)
    mo = _number(buf, p + 4 + gap, 2)
    d = _number(buf, p + 6 + 2 * gap, 2)
    h = _number(buf, p + 8 + 3 * gap, 2)
    mi = _number(buf, p + 10 + 4 * gap, 2)
    s = _number(buf, p + 12 + 5 * gap, 2)
    if y < 1 or mo < 1 or mo > 12 or d < 1 or h > 23 or mi > 59 or s > 59:
        return NO_TIME
    leap = (y % 4 == 0 and y % 100 != 0) or y % 400 == 0
    if d > _DAYS[mo] + (1 if mo == 2 and leap else 0):
        return NO_TIME
    return _epoch_days(y, mo, d) * 86400 + h * 3600 + mi * 60 + s


@njit(cache=True, nogil=True, inline="always")
def _shaped(buf, s):  # type: ignore[no-untyped-def]
    """Whether the 24 bytes at ``buf[s]`` are a time and a space, checked a word at a time:
    the shape of nearly every line."""
    if s + 24 > len(buf):
        return False
    for j in range(3):
        w = B.load8(buf, s + 8 * j)
        d = _DIGIT_BYTES[j]
        if (w & ~d) != _SEPARATORS[j]:
            return False
        if B.digits((w & d) | (_ZEROS & ~d)) != 8:
            return False
    return True


@njit(cache=True, nogil=True, inline="always")
def _header(buf, s):  # type: ignore[no-untyped-def]
    """The time at the start of the line at ``buf[s]``, as naive epoch milliseconds: (ms,
    -1), or (0, what is wrong: ``_SHAPE``, ``_CUT`` or ``_RANGE``)."""
    if not _shaped(buf, s):
        n = len(buf)
        for k in range(23):
            if s + k >= n or buf[s + k] == 10:
                return 0, _CUT
            c = buf[s + k]
            t = _TEMPLATE[k]
            if t == 0:
                if c < 48 or c > 57:
                    return 0, _SHAPE
            elif c != t:
                return 0, _SHAPE
    seconds = _seconds(buf, s, 1)
    if seconds == NO_TIME:
        return 0, _RANGE
    return seconds * 1000 + _number(buf, s + 20, 3), -1


@njit(cache=True, nogil=True, inline="always")
def _level(buf, p):  # type: ignore[no-untyped-def]
    """`` [LEVEL]`` at ``buf[p]`` (1 to 21 characters, no space): the position of its "]"
    (followed by a space or the line end), or -1."""
    n = len(buf)
    if p + 2 >= n or buf[p] != 32 or buf[p + 1] != 91:
        return -1
    q = p + 2
    stop = min(n, p + 24)
    while q < stop:
        c = buf[q]
        if c == 93:
            break
        if c == 10 or c == 32:  # noqa: PLR1714 - "in" on a set does not compile
            return -1
        q += 1
    if q >= stop or q == p + 2:
        return -1
    if q + 1 < n and buf[q + 1] != 32 and buf[q + 1] != 10:
        return -1
    return q


@njit(cache=True, nogil=True, inline="always")
def _left_out(buf, p):  # type: ignore[no-untyped-def]
    """Scan an INFO message from ``buf[p]`` to its line end: (whether it is a throughput,
    segment or send-timeout line, the line end)."""
    n = len(buf)
    while True:
        q = _find3(buf, p, n, 10, 83, 47)  # "\n", "S", "/"
        if q >= n or buf[q] == 10:
            return False, q
        if buf[q] == 47:
            if _at(buf, q - 5, _PER_SEC):
                return True, B.line_end(buf, q)
        elif _at(buf, q - 1, _SEGMENT) or _at(buf, q, _TIMEOUT):
            return True, B.line_end(buf, q)
        p = q + 1


@njit(cache=True, nogil=True, inline="always")
def _utf8(buf, s, e):  # type: ignore[no-untyped-def]
    """Whether ``buf[s:e]`` is valid UTF-8 (no overlong forms, no surrogates)."""
    i = s
    while i < e:
        c = buf[i]
        if c < 0x80:
            i += 1
            continue
        lo, hi, more = 0x80, 0xBF, 0
        if 0xC2 <= c <= 0xDF:
            more = 1
        elif c == 0xE0:
            lo, more = 0xA0, 2
        elif c == 0xED:
            hi, more = 0x9F, 2
        elif 0xE1 <= c <= 0xEF:
            more = 2
        elif c == 0xF0:
            lo, more = 0x90, 3
        elif 0xF1 <= c <= 0xF3:
            more = 3
        elif c == 0xF4:
            hi, more = 0x8F, 3
        else:
            return False
        if i + more >= e:
            return False
        if buf[i + 1] < lo or buf[i + 1] > hi:
            return False
        for k in range(2, more + 1):
            if buf[i + k] & 0xC0 != 0x80:
                return False
        i += more + 1
    return True


@njit(cache=True, nogil=True, inline="always")
def _stamp(buf, fs, fe):  # type: ignore[no-untyped-def]
    """The reception stamp ``YYYYMMDDHHMMSS`` (UTC) at ``buf[fs:fe]`` as epoch seconds, or
    ``NO_TIME``."""
    if fs < 0 or fe - fs != 14:
        return NO_TIME
    for k in range(fs, fe):
        if buf[k] < 48 or buf[k] > 57:
            return NO_TIME
    return _seconds(buf, fs, 0)


@njit(cache=True, nogil=True, inline="always")
def _skip(buf, q, e, spaces):  # type: ignore[no-untyped-def]
    """From ``buf[q]``, past the spaces (``spaces``) or up to the next one (not)."""
    while q < e and (buf[q] == 32) == spaces:
        q += 1
    return q


@njit(cache=True, nogil=True, inline="always")
def _name(buf, q, e):  # type: ignore[no-untyped-def]
    """The file name at ``buf[q]`` (up to a space or ``e``), and in it the 7th ":" field,
    the reception stamp: (name end, ":" count, field start, field end (-1: none), whether
    any byte is not ASCII)."""
    high = 0
    colons = 0
    fs = -1
    fe = -1
    while q < e:
        c = buf[q]
        if c == 32:
            break
        high |= c
        if c == 58:
            colons += 1
            if colons == 6:
                fs = q + 1
            elif colons == 7:
                fe = q
        q += 1
    if fs >= 0 and fe < 0:
        fe = q
    return q, colons, fs, fe, high >= 0x80


@njit(cache=True, nogil=True, inline="always")
def _product(buf, m, e, tx, error, out, row):  # type: ignore[no-untyped-def]
    """The message ``buf[m:e]`` of an INFO or ERROR line: ``(N Bytes) <verb> <name> ...``.
    Fills ``out[row, 1:]`` (bytes, name start, name end, stamp); returns (status, aux, start
    and end of what a reject quotes)."""
    t0s = _skip(buf, m, e, True)
    t0e = _skip(buf, t0s, e, False)
    t1s = _skip(buf, t0e, e, True)
    t1e = _skip(buf, t1s, e, False)
    if not (t0e > t0s and buf[t0s] == 40 and t1e - t1s == 6 and _at(buf, t1s, _BYTES)):
        out[row, 1] = 0  # no byte count: an ERROR line is still an error
        out[row, 3] = 0
        out[row, 4] = 0
        out[row, 5] = NO_TIME
        return (OK if error else SKIPPED), 0, m, m
    digits = t0e - t0s - 1
    if digits < 1 or digits > 18:
        return BAD_COUNT, 0, t0s, t1e
    for d in range(t0s + 1, t0e):
        if buf[d] < 48 or buf[d] > 57:
            return BAD_COUNT, 0, t0s, t1e
    ns = _skip(buf, _skip(buf, _skip(buf, t1e, e, True), e, False), e, True)
    if ns >= e:
        return NO_NAME, 0, m, m
    ne, colons, fs, fe, high = _name(buf, ns, e)
    if high and not _utf8(buf, ns, ne):
        return NOT_UTF8, 0, ns, ne
    stamp = _stamp(buf, fs, fe) if tx else NO_TIME
    if tx and not error and stamp == NO_TIME:
        if fs < 0:
            return NO_STAMP, colons + 1, ns, ne
        return NO_STAMP, 0, fs, fe
    out[row, 1] = _number(buf, t0s + 1, digits)
    out[row, 3] = ns
    out[row, 4] = ne
    out[row, 5] = stamp
    return OK, 0, m, m


@njit(cache=True, nogil=True, inline="always")
def _line(buf, s, tx, out, row):  # type: ignore[no-untyped-def]
    """Parse the line at ``buf[s]``; a kept one's values go to ``out[row]`` (naive ms,
    bytes, error, name start, name end, stamp). Returns (status, aux, start and end of what
    a reject quotes, line end)."""
    naive, bad = _header(buf, s)
    if bad >= 0:
        e = B.line_end(buf, s)
        if e == s:
            return SKIPPED, 0, s, s, e  # an empty line
        return BAD_TIME, bad, s, min(e, s + 23), e
    close = _level(buf, s + 23)
    if close < 0:
        e = B.line_end(buf, s + 23)
        return BAD_LEVEL, 0, s + 23, min(e, s + 43), e
    m = close + 1
    n_level = close - s - 25
    error = n_level == 5 and _at(buf, s + 25, _ERROR)
    if error:
        e = B.line_end(buf, m)
    elif n_level == 4 and _at(buf, s + 25, _INFO):
        left_out, e = _left_out(buf, m)
        if left_out:
            return SKIPPED, 0, s, s, e
    else:
        return SKIPPED, 0, s, s, B.line_end(buf, m)
    out[row, 0] = naive
    out[row, 2] = 1 if error else 0
    st, aux, qs, qe = _product(buf, m, e, tx, error, out, row)
    return st, aux, qs, qe, e


@njit(cache=True, nogil=True)
def parse_lines(buf, tx, kept, kept_line, bad):  # type: ignore[no-untyped-def]
    """Parse every line of ``buf`` (uint8). Kept lines fill ``kept`` rows (naive ms, bytes,
    error, name start, name end, stamp) and ``kept_line`` (index of the line in ``buf``);
    rejected ones fill ``bad`` rows (index, status, aux, quoted start, quoted end, line
    start, line end). Returns (lines, kept, skipped, rejected)."""
    n = len(buf)
    pos = 0
    i = 0
    k = 0
    r = 0
    skipped = 0
    while pos < n:
        st, aux, qs, qe, e = _line(buf, pos, tx, kept, k)
        if st == OK:
            kept_line[k] = i
            k += 1
        elif st == SKIPPED:
            skipped += 1
        else:
            bad[r, 0] = i
            bad[r, 1] = st
            bad[r, 2] = aux
            bad[r, 3] = qs
            bad[r, 4] = qe
            bad[r, 5] = pos
            bad[r, 6] = e
            r += 1
        i += 1
        pos = e + 1
    return i, k, skipped, r


@njit(cache=True, nogil=True)
def gather_names(buf, starts, ends, width):  # type: ignore[no-untyped-def]
    """The names ``buf[starts[i]:ends[i]]`` as rows of ``width`` bytes, zero-padded: a
    fixed-width bytes column once viewed as ``S<width>``."""
    out = np.empty((len(starts), width), dtype=np.uint8)
    for i in range(len(starts)):
        s = starts[i]
        size = ends[i] - s
        out[i, :size] = buf[s : s + size]
        out[i, size:] = 0
    return out


@dataclass(frozen=True)
class Parsed:
    """What one chunk of lines gave: the kept lines as columns, the counts, the rejects."""

    columns: Columns
    lines: int
    kept: int
    skipped: int
    rejected: int
    rejects: list[dict[str, Any]]


class MetpxParser:
    """The lines of one log file, a chunk after another (it keeps the clock's state).

    ``direction``: ``tx`` (a sender's log: latency from the reception stamp) or ``rx``.
    """

    def __init__(self, zone: ZoneInfo | str, direction: str) -> None:
        if direction not in ("tx", "rx"):
            raise ValueError(f"direction must be 'tx' or 'rx', got {direction!r}")
        self.tx = direction == "tx"
        self.clock = LocalClock(zone if isinstance(zone, ZoneInfo) else ZoneInfo(zone))

    def parse(self, data: np.ndarray, file: str, first_line: int) -> Parsed:
        """Parse ``data`` (uint8, whole lines) whose first line is line ``first_line`` of
        ``file``."""
        n_max = int(count_lines(data))
        kept = np.empty((n_max, 6), dtype=np.int64)
        kept_line = np.empty(n_max, dtype=np.int64)
        bad = np.empty((n_max, 7), dtype=np.int64)
        lines, k, skipped, r = parse_lines(data, self.tx, kept, kept_line, bad)
        kept = kept[:k]
        time = self.clock.to_utc_ms(kept[:, 0].copy())
        stamps = kept[:, 5]
        latency = np.full(k, np.nan)
        has = stamps != NO_TIME
        latency[has] = (time[has] - stamps[has] * 1000) / 1000.0
        starts = kept[:, 3].copy()
        ends = kept[:, 4].copy()
        width = max(1, int((ends - starts).max())) if k else 1
        names = gather_names(data, starts, ends, width).view(f"S{width}").reshape(k)
        columns = Columns(
            time=time,
            latency=latency,
            bytes=kept[:, 1].copy(),
            error=kept[:, 2].astype(np.int8),
            name=names,
            line=kept_line[:k] + first_line,
        )
        rejects = [_reject(data, row, file, first_line) for row in bad[:r].tolist()]
        return Parsed(columns, lines, k, skipped, r, rejects)


def _reject(data: np.ndarray, row: list[int], file: str, first_line: int) -> dict[str, Any]:
    index, status, aux, qs, qe, start, end = row
    found = go_escape(data[qs:qe].tobytes())
    return {
        "kind": "reject",
        "file": file,
        "line": first_line + index,
        "reason": reason(status, aux, found),
        "raw": go_escape(data[start:end].tobytes()),
    }


def reason(status: int, aux: int, found: str) -> str:
    """Why a line was rejected, from the kernel's status, its detail and the quoted text."""
    if status == BAD_TIME:
        what = {_SHAPE: "", _CUT: " (the line is cut short)", _RANGE: ", not a valid date"}
        return ("expected the time 'YYYY-MM-DD HH:MM:SS,mmm' at the start of the line, "
                f"found '{found}'{what[aux]}")  # fmt: skip
    if status == BAD_LEVEL:
        return ("expected ' [LEVEL] ' after the time, "
                + (f"found '{found}'" if found else "found the end of the line"))  # fmt: skip
    if status == BAD_COUNT:
        return f"expected a byte count '(N Bytes)', N of 1 to 18 digits, found '{found}'"
    if status == NO_NAME:
        return ("the line ends before the file name (expected '(N Bytes) <verb> <file name>', "
                "the name being the 7th space-separated field)")  # fmt: skip
    if status == NO_STAMP:
        if aux > 0:
            return (f"the file name has no reception stamp (7th ':' field): '{found}' has "
                    f"only {aux} field{'s' if aux > 1 else ''}")  # fmt: skip
        return ("the file name has no reception stamp (7th ':' field): expected "
                f"YYYYMMDDHHMMSS, found '{found}'")  # fmt: skip
    if status == NOT_UTF8:
        return f"the file name is not valid UTF-8: '{found}'"
    raise AssertionError(f"no reason for status {status}")  # the kernel has no other


#: a line of each kind, to run the compiled code once
SAMPLE = (
    b"2026-11-29 00:24:36,616 [INFO] (130 Bytes) Bulletin A:b\\:C:D:3:Direct:20261129052436 "
    b" delivered\n2026-11-29 00:24:37,002 [ERROR] (12 Bytes) File f not delivered\n"
    b"2026-11-29 00:24:38,002 [INFO] 3 Bytes/sec\n\n2026-11-29\n"
)


def warm() -> None:
    """Load the compiled parser (compiling it the first time ever), with the argument types
    a run gives it: a process that calls this before it forks hands it to its children."""
    with compiling_notice("the MetPX log parser"):
        data = np.frombuffer(SAMPLE, dtype=np.uint8)  # read-only, as chunks arrive
        for direction in ("tx", "rx"):
            MetpxParser("UTC", direction).parse(data, "sample", 1)
