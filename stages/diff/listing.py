"""The lists of a file-level diff: the paths of the entries that changed, read again from the
stats files, written as TSV.

The diff keeps no paths (``stages.diff.entries``); once it knows which lines changed it
reads each file once more, as a stream, and decodes only those lines' paths. Rows are
formatted by compiled code, paths with the same Go-style escapes as the usage reports
(``stages.wrstat.escape``), since a change list can run to millions of rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from numba import njit

from pipeline import Context
from stages.streams import Progress
from stages.wrstat import layout as K
from stages.wrstat.lines import LUTS, decode_path
from stages.wrstat.naming import StatsFile, from_name
from stages.wrstat.read import read_file

#: the columns of every change list; "-" where a side has no value
LIST_COLUMNS = (
    "Path",
    "Old Path",
    "Type",
    "UID",
    "GID",
    "Size Before",
    "Size After",
    "Mtime Before",
    "Mtime After",
)

MISSING = np.iinfo(np.int64).min


def stats_file(path: Path) -> StatsFile:
    """A stats file by its wrstat name; any other name is taken as it is (its volume is the
    name, its snapshot time the file's mtime)."""
    known = from_name(path)
    if known is not None:
        return known
    return StatsFile(path, path.name.split(".")[0], None, int(path.stat().st_mtime))


def chunks(
    path: Path, chunk_mib: float = 4.0, ctx: Context | None = None, progress: Progress | None = None
) -> Iterator[dict[str, object]]:
    """What ``stages.wrstat.read`` makes of one file. A file cut short is reported to
    ``ctx`` (the run then exits 3); without one (reading a file again for its paths,
    after it was read whole once), to a context of its own."""
    ctx = ctx or Context("diff", 0, 1, Path("."))
    yield from read_file(ctx, stats_file(path), max(1, int(chunk_mib * (1 << 20))), progress)


@njit(cache=True, nogil=True)
def _pick(data, first, wanted, encoding, lut, out, offsets):  # type: ignore[no-untyped-def]
    """Decode the paths of the first ``wanted`` lines (sorted) that lie in ``data`` (whose
    first line is ``first``) into ``out``, path ``k`` ending at ``offsets[k + 1]``;
    returns how many were found."""
    line = first
    pos = 0
    n = len(data)
    w = 0
    at = 0
    while w < len(wanted) and pos < n:
        if wanted[w] == line:
            _, o, _, _ = decode_path(data, pos, encoding, lut, out, at, -1, 0, 0)
            at = o
            w += 1
            offsets[w] = at
            continue
        while pos < n and data[pos] != 10:
            pos += 1
        pos += 1
        line += 1
    return w


@dataclass(frozen=True)
class Paths:
    """Some decoded paths: path ``k`` is ``data[start[k]:end[k]]``."""

    data: np.ndarray
    start: np.ndarray
    end: np.ndarray

    def take(self, idx: np.ndarray) -> Paths:
        return Paths(self.data, self.start[idx], self.end[idx])

    def text(self, k: int) -> str:
        return escape_path(self.data[self.start[k] : self.end[k]].tobytes())

    @staticmethod
    def none(n: int) -> Paths:
        zero = np.zeros(n, dtype=np.int64)
        return Paths(np.empty(0, np.uint8), zero, zero)


def iter_paths(path: Path, lines: np.ndarray) -> Iterator[tuple[int, int, Paths]]:
    """The decoded paths of ``lines`` (sorted, unique, 1-based) of a stats file, chunk by
    chunk as the file is read: ``(lo, hi, paths)`` for ``lines[lo:hi]``. Only one chunk's
    paths are held at a time."""
    wanted = np.asarray(lines, dtype=np.int64)
    done = 0
    for item in chunks(path):
        if done == len(wanted):
            return
        if item.get("kind") != "chunk":
            continue
        data = item["data"]
        assert isinstance(data, np.ndarray)
        encoding = int(item["encoding"])  # type: ignore[call-overload]
        lut = LUTS[0] if encoding == K.BASE64 else LUTS[1]
        room = min(len(wanted) - done, int(np.count_nonzero(data == 10)) + 1)
        offsets = np.zeros(room + 1, dtype=np.int64)
        pool = np.empty(len(data), dtype=np.uint8)
        first = int(item["line"])  # type: ignore[call-overload]
        found = int(_pick(data, first, wanted[done : done + room], encoding, lut, pool, offsets))
        if found:
            yield (
                done,
                done + found,
                Paths(pool, offsets[:found].copy(), offsets[1 : found + 1].copy()),
            )
            done += found
    if done < len(wanted):
        msg = f"{path}: line {wanted[done]:,} is gone; the file changed while it was compared"
        raise RuntimeError(msg)


def read_paths(path: Path, lines: np.ndarray) -> Paths:
    """The decoded paths of ``lines`` (sorted, unique, 1-based) of a stats file, all held
    at once: for a few lines (``iter_paths`` for many)."""
    pools, starts, ends = [np.empty(0, np.uint8)], [np.empty(0, np.int64)], [np.empty(0, np.int64)]
    base = 0
    for _, _, p in iter_paths(path, lines):
        used = int(p.end[-1])
        pools.append(p.data[:used].copy())  # not a view: the chunk's whole buffer would stay
        starts.append(p.start + base)
        ends.append(p.end + base)
        base += used
    return Paths(np.concatenate(pools), np.concatenate(starts), np.concatenate(ends))


@njit(cache=True, nogil=True, inline="always")
def _utf8_len(p, i, e):  # type: ignore[no-untyped-def]
    """Length of the valid UTF-8 sequence at ``p[i]`` (0: not valid), as Python decodes."""
    c = p[i]
    if c < 0xC2 or c > 0xF4:
        return 0
    if c < 0xE0:
        n, lo, hi = 2, 0x80, 0xBF
    elif c < 0xF0:
        n = 3
        lo = 0xA0 if c == 0xE0 else 0x80
        hi = 0x9F if c == 0xED else 0xBF
    else:
        n = 4
        lo = 0x90 if c == 0xF0 else 0x80
        hi = 0x8F if c == 0xF4 else 0xBF
    if i + n > e or p[i + 1] < lo or p[i + 1] > hi:
        return 0
    for k in range(2, n):
        if p[i + k] < 0x80 or p[i + k] > 0xBF:
            return 0
    return n


_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


@njit(cache=True, nogil=True, inline="always")
def _escaped(p, s, e, out, o):  # type: ignore[no-untyped-def]
    """``p[s:e]`` into ``out[o:]`` with ``go_escape``'s escapes; returns the new end."""
    i = s
    while i < e:
        c = p[i]
        if c >= 0x80:
            n = _utf8_len(p, i, e)
            if n:
                for k in range(n):
                    out[o + k] = p[i + k]
                o += n
                i += n
                continue
        if c in (92, 9, 10, 13):
            out[o] = 92
            out[o + 1] = 92 if c == 92 else (116 if c == 9 else (110 if c == 10 else 114))
            o += 2
        elif c < 0x20 or c == 0x7F or c >= 0x80:
            out[o] = 92
            out[o + 1] = 120
            out[o + 2] = _HEX[c >> 4]
            out[o + 3] = _HEX[c & 15]
            o += 4
        else:
            out[o] = c
            o += 1
        i += 1
    return o


@njit(cache=True, nogil=True, inline="always")
def _int(v, out, o):  # type: ignore[no-untyped-def]
    if v == MISSING:
        out[o] = 45
        return o + 1
    if v < 0:
        out[o] = 45
        o += 1
        v = -v
    n = 1
    t = v
    while t >= 10:
        t //= 10
        n += 1
    for k in range(n - 1, -1, -1):
        out[o + k] = 48 + v % 10
        v //= 10
    return o + n


@njit(cache=True, nogil=True)
def _format(pa, a0, a1, pb, b0, b1, etype, numbers, out):  # type: ignore[no-untyped-def]
    """TSV rows: path ``pa[a0[r]:a1[r]]``, old path ``pb[b0[r]:b1[r]]`` ("-" when
    empty), the type byte, then each of ``numbers[r]``; returns the bytes written."""
    o = 0
    for r in range(len(etype)):
        o = _escaped(pa, a0[r], a1[r], out, o)
        out[o] = 9
        o += 1
        if b1[r] > b0[r]:
            o = _escaped(pb, b0[r], b1[r], out, o)
        else:
            out[o] = 45
            o += 1
        out[o] = 9
        out[o + 1] = etype[r]
        o += 2
        for c in range(numbers.shape[1]):
            out[o] = 9
            o = _int(numbers[r, c], out, o + 1)
        out[o] = 10
        o += 1
    return o


def escape_path(raw: bytes) -> str:
    """One path with the list's escapes (the same as ``go_escape``)."""
    p = np.frombuffer(raw, dtype=np.uint8)
    out = np.empty(4 * len(raw) + 1, dtype=np.uint8)
    return bytes(out[: _escaped(p, 0, len(raw), out, 0)]).decode("utf-8", "surrogateescape")


def write_rows(
    f: BinaryIO,
    paths: Paths,
    old_paths: Paths,
    etype: np.ndarray,
    numbers: np.ndarray,
    block: int = 65536,
) -> None:
    """Write change rows (``LIST_COLUMNS``): ``numbers``, an int64 array of UID, GID,
    sizes and mtimes per row (``MISSING`` for "-")."""
    a, b = paths, old_paths
    for s in range(0, len(etype), block):
        e = min(s + block, len(etype))
        room = 4 * int((a.end[s:e] - a.start[s:e]).sum() + (b.end[s:e] - b.start[s:e]).sum())
        out = np.empty(room + (e - s) * 256, dtype=np.uint8)
        n = _format(
            a.data,
            a.start[s:e],
            a.end[s:e],
            b.data,
            b.start[s:e],
            b.end[s:e],
            etype[s:e],
            numbers[s:e],
            out,
        )
        f.write(out[:n].data)


def header() -> bytes:
    return ("\t".join(LIST_COLUMNS) + "\n").encode()
