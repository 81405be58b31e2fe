"""Parsing wrstat stats lines into numpy columns, compiled (numba): one pass over the bytes.

A stats line is 11 or 12 tab-separated fields (see the wrstat column table in
``stages.wrstat``): the path, then size, uid, gid, atime, mtime, ctime, type, inode, nlink,
dev and, from wrstat 6.4, the apparent size. The path is base64 (standard alphabet, or the
lexically ordered alphabet of wrstat 5.1) or a Go-quoted string (wrstat 5.2 on), which is
unquoted to bytes here: every Go escape (``\\a \\b \\f \\n \\r \\t \\v \\\\ \\"``, ``\\xNN``,
octal ``\\NNN``, ``\\uXXXX``, ``\\UXXXXXXXX``) is decoded, and bytes that are not UTF-8 are
kept as they are.

A line that cannot be parsed gets a non-zero status (and a detail in ``aux``); the caller
turns these into reject records. Nothing is allocated per line.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from stages.wrstat import bytescan as B
from stages.wrstat.layout import (
    BAD_BASE64,
    BAD_QUOTING,
    BAD_TYPE,
    BASE64,
    COLUMNS,
    EMPTY,
    NOT_A_NUMBER,
    NOT_ABSOLUTE,
    OK,
    OUT_OF_RANGE,
    QUOTED,
    TYPES,
)

_STANDARD = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_SORTED = b"+/0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _lut(alphabet: bytes) -> np.ndarray:
    lut = np.full(256, 255, dtype=np.uint8)
    for i, c in enumerate(alphabet):
        lut[c] = i
    return lut


LUTS = np.stack([_lut(_STANDARD), _lut(_SORTED)])

TYPE_OK = np.zeros(256, dtype=np.bool_)
for _t in TYPES:
    TYPE_OK[_t] = True

_U32 = np.uint64(0xFFFFFFFF)
_I63 = np.uint64(0x7FFFFFFFFFFFFFFF)
_U64 = np.uint64(0xFFFFFFFFFFFFFFFF)
_TEN = np.uint64(10)

#: the byte each one-letter Go escape stands for (-1: not one)
_ESCAPES = np.full(256, -1, dtype=np.int16)
for _letter, _byte in zip(b'abfnrtv\\"', b'\a\b\f\n\r\t\v\\"', strict=True):
    _ESCAPES[_letter] = _byte


@njit(cache=True, nogil=True)
def _hex(c):  # type: ignore[no-untyped-def]
    if 48 <= c <= 57:
        return c - 48
    if 97 <= c <= 102:
        return c - 87
    if 65 <= c <= 70:
        return c - 55
    return -1


@njit(cache=True, nogil=True)
def _put_rune(out, at, r):  # type: ignore[no-untyped-def]
    """UTF-8 encode rune ``r`` at ``out[at]``; returns the new end."""
    if r < 0x80:
        out[at] = r
        return at + 1
    if r < 0x800:
        out[at] = 0xC0 | (r >> 6)
        out[at + 1] = 0x80 | (r & 0x3F)
        return at + 2
    if r < 0x10000:
        out[at] = 0xE0 | (r >> 12)
        out[at + 1] = 0x80 | ((r >> 6) & 0x3F)
        out[at + 2] = 0x80 | (r & 0x3F)
        return at + 3
    out[at] = 0xF0 | (r >> 18)
    out[at + 1] = 0x80 | ((r >> 12) & 0x3F)
    out[at + 2] = 0x80 | ((r >> 6) & 0x3F)
    out[at + 3] = 0x80 | (r & 0x3F)
    return at + 4


@njit(cache=True, nogil=True)
def _unquote(buf, s, e, out, at, done):  # type: ignore[no-untyped-def]
    """Go-unquote ``buf[s:e]`` (quotes included) into ``out[at:]``, of which the first
    ``done`` bytes are already there: plain bytes (no escape, no quote) that follow the
    opening quote. Returns (end, -1) on success, or (at, offset of the problem in the
    field)."""
    if e - s < 2 or buf[s] != 34 or buf[e - 1] != 34:
        return at, 0
    i = s + 1 + done
    stop = e - 1
    o = at + done
    while i < stop:
        c = buf[i]
        if c == 34:  # an unescaped quote before the end
            return at, i - s
        if c != 92:
            out[o] = c
            o += 1
            i += 1
            continue
        if i + 1 >= stop:
            return at, i - s
        c = buf[i + 1]
        simple = _ESCAPES[c]
        if simple >= 0:
            out[o] = simple
            o += 1
            i += 2
            continue
        if c == 120:  # \xNN: one byte
            if i + 3 >= stop:
                return at, i - s
            h1 = _hex(buf[i + 2])
            h2 = _hex(buf[i + 3])
            if h1 < 0 or h2 < 0:
                return at, i - s
            out[o] = h1 * 16 + h2
            o += 1
            i += 4
            continue
        if 48 <= c <= 55:  # \NNN octal: one byte
            if i + 3 >= stop:
                return at, i - s
            v = 0
            for k in range(1, 4):
                d = buf[i + k] - 48
                if d < 0 or d > 7:
                    return at, i - s
                v = v * 8 + d
            if v > 255:
                return at, i - s
            out[o] = v
            o += 1
            i += 4
            continue
        if c == 117 or c == 85:  # \uXXXX, \UXXXXXXXX: a rune, as UTF-8
            n = 4 if c == 117 else 8
            if i + 1 + n >= stop:
                return at, i - s
            r = 0
            for k in range(2, 2 + n):
                h = _hex(buf[i + k])
                if h < 0:
                    return at, i - s
                r = r * 16 + h
            if r > 0x10FFFF or (0xD800 <= r <= 0xDFFF):
                return at, i - s
            o = _put_rune(out, o, r)
            i += 2 + n
            continue
        return at, i - s  # an unknown escape (\' included: invalid between double quotes)
    return o, -1


@njit(cache=True, nogil=True)
def _padded_group(buf, g, lut, out, o):  # type: ignore[no-untyped-def]
    """Decode the last group of a base64 field, ``buf[g:g + 4]``, which ends in one or two
    "=", into ``out[o:]``: (end, -1) or (o, offset of the bad character in the group)."""
    pad = 2 if buf[g + 2] == 61 else 1
    v = np.int64(0)
    for k in range(4):
        if k >= 4 - pad:
            v = v << 6
            continue
        d = np.int64(lut[buf[g + k]])
        if d > 63:
            return o, k
        v = (v << 6) | d
    out[o] = v >> 16
    if pad < 2:
        out[o + 1] = (v >> 8) & 255
    return o + 3 - pad, -1


@njit(cache=True, nogil=True, inline="always")
def _base64_field(buf, s, lut, out, at):  # type: ignore[no-untyped-def]
    """Decode the base64 field (or the rest of one, from a group boundary) at ``buf[s]``,
    which ends at a tab or line end, into ``out[at:]``, in one pass. Returns (field end,
    out end, -1) or (field end, at, offset of the problem from ``s``)."""
    n_buf = len(buf)
    o = at
    g = s
    while g + 3 < n_buf:
        a = np.int64(lut[buf[g]])
        b = np.int64(lut[buf[g + 1]])
        c = np.int64(lut[buf[g + 2]])
        d = np.int64(lut[buf[g + 3]])
        if (a | b | c | d) > 63:
            break
        v = (a << 18) | (b << 12) | (c << 6) | d
        out[o] = v >> 16
        out[o + 1] = (v >> 8) & 255
        out[o + 2] = v & 255
        o += 3
        g += 4
    end = g
    while end < n_buf and buf[end] != 9 and buf[end] != 10:
        end += 1
    if end == g:  # stopped exactly at the field's end
        return end, o, -1
    if end - g == 4 and buf[g + 3] == 61:  # a last group with padding
        new_o, bad = _padded_group(buf, g, lut, out, o)
        if bad < 0:
            return end, new_o, -1
        return end, at, bad + g - s
    for k in range(g, end):  # the first character that is not base64
        if lut[buf[k]] > 63:
            return end, at, k - s
    return end, at, end - s  # the field's length is not a multiple of 4


@njit(cache=True, nogil=True, inline="always")
def decode_path(buf, start, encoding, lut, out, at, prev, prev_field, prev_len):  # type: ignore[no-untyped-def]
    """Decode the path field at ``buf[start]`` into ``out[at:]``.

    When ``prev`` >= 0, ``out[at:at + prev_len]`` holds the path of the field of
    ``prev_field`` bytes at ``buf[prev]`` (an earlier line, decoded without error): what
    the two fields share is not decoded again. wrstat writes a directory's entries one
    after another, so most of each path is its predecessor's. Returns (field end, path
    end, offset of a problem in the field or -1, length of the prefix the path shares
    with the previous one, at least)."""
    n_buf = len(buf)
    r = 0
    if prev >= 0:
        r = B.common_prefix(buf, prev, buf, start, min(prev_field, n_buf - start))
    if encoding == QUOTED:
        p = B.field_end(buf, start + r)  # the shared part holds no tab
        if p == start or p >= n_buf or buf[p] != 9:
            return p, at, -1, 0  # no path to decode: the caller says why
        done = 0  # plain bytes after the quote that are the previous path's
        limit = min(r, p - start - 1)
        if limit > 1:
            done = min(B.find2(buf, start + 1, start + limit, 92, 34) - start - 1, prev_len)
        o, bad = _unquote(buf, start, p, out, at, done)
        return p, o, bad, done if bad < 0 else 0
    g = r // 4
    if prev >= 0:
        if g > 0 and buf[start + 4 * g - 1] == 61:
            g -= 1  # a padded group ends the field: decode it again
        if 3 * g > prev_len:
            g = prev_len // 3
    o0 = at + 3 * g
    n_old = min(3, max(0, at + prev_len - o0))  # bytes of the previous path about to go
    old0 = out[o0] if n_old > 0 else 0
    old1 = out[o0 + 1] if n_old > 1 else 0
    old2 = out[o0 + 2] if n_old > 2 else 0
    p, o, bad = _base64_field(buf, start + 4 * g, lut, out, o0)
    if bad >= 0:
        return p, at, bad + 4 * g, 0
    if p == start:
        return p, at, 0, 0  # an empty field
    n_new = min(n_old, o - o0)
    common = 3 * g
    if n_new > 0 and out[o0] == old0:
        common += 1
        if n_new > 1 and out[o0 + 1] == old1:
            common += 1
            if n_new > 2 and out[o0 + 2] == old2:
                common += 1
    return p, o, -1, common


#: what each numeric column may hold: 0 any int64 (times), 1 int64 >= 0, 2 uint32, 3 uint64
KINDS = np.array([-1, -1, 1, 2, 2, 0, 0, 0, -1, 3, 1, 3, 1], dtype=np.int8)


@njit(cache=True, nogil=True, inline="always")
def path_status(buf, start, p, bad, encoding, pdata, pd, new_pd):  # type: ignore[no-untyped-def]
    """(status, aux) of a line from its decoded path: ``OK`` to go on to the numbers."""
    n_buf = len(buf)
    if p == start and (p >= n_buf or buf[p] == 10):
        return EMPTY, 0
    if p >= n_buf or buf[p] == 10:
        return COLUMNS, 1
    if bad >= 0:
        return (BAD_QUOTING if encoding == QUOTED else BAD_BASE64), bad
    if new_pd == pd or pdata[pd] != 47:
        return NOT_ABSOLUTE, 0
    return OK, 0


@njit(cache=True, nogil=True, inline="always")
def numbers(buf, p, ncols, type_ok, kinds, row):  # type: ignore[no-untyped-def]
    """Columns 2 on of a line, from the tab after its path at ``buf[p]``: into ``row``
    (column order, as int64 bits). Returns (status, aux, position reached, columns seen,
    entry type)."""
    n_buf = len(buf)
    st = OK
    ax = 0
    etype = 0
    col = 1
    while p < n_buf and buf[p] == 9:
        p += 1
        col += 1
        if col > ncols:
            break
        if col == 8:  # the entry type: one byte
            c = buf[p] if p < n_buf else 10
            if c == 9 or c == 10 or not type_ok[c]:
                st = BAD_TYPE
                ax = 0 if c == 9 or c == 10 else c
                break
            etype = c
            p += 1
            if p < n_buf and buf[p] != 9 and buf[p] != 10:
                st = BAD_TYPE
                ax = c
                break
            continue
        neg = p < n_buf and buf[p] == 45
        if neg:
            p += 1
        v = np.uint64(0)
        digits = 0
        if p + 16 <= n_buf:  # eight digits at a time; the loop below reads any more
            v, digits, p = B.unsigned(buf, p)
        while p < n_buf:
            d = np.int64(buf[p]) - 48
            if d < 0 or d > 9:
                break
            if digits == 19 and v > (_U64 - np.uint64(d)) // _TEN:
                digits = 99  # more than 64 bits
            v = v * _TEN + np.uint64(d)
            digits += 1
            p += 1
        if (p < n_buf and buf[p] != 9 and buf[p] != 10) or digits == 0:
            st = NOT_A_NUMBER
            ax = col
            break
        kind = kinds[col]
        if (
            digits > 20
            or (neg and kind != 0)
            or (kind == 2 and v > _U32)
            or (kind != 3 and v > _I63)
        ):
            st = OUT_OF_RANGE
            ax = col
            break
        sv = np.int64(v)
        row[col - 2] = -sv if neg else sv
    if st == OK and col != ncols:
        st = COLUMNS
        ax = col
    return st, ax, p, col, etype


@njit(cache=True, nogil=True, inline="always")
def line_end(buf, start, p, st, ax, ncols):  # type: ignore[no-untyped-def]
    """(status, aux, line end): a wrong column count is the reason, whatever else."""
    end = B.line_end(buf, p)
    if st != OK and st != EMPTY:
        cols = 1
        for k in range(start, end):
            if buf[k] == 9:
                cols += 1
        if cols != ncols:
            return COLUMNS, cols, end
    return st, ax, end


@njit(cache=True, nogil=True, inline="always")
def parse_line(buf, start, encoding, ncols, lut, type_ok, kinds, row, pdata, pd):  # type: ignore[no-untyped-def]
    """Parse the line starting at ``buf[start]``: its numbers into ``row`` (column order
    from column 2, as int64 bits), its path decoded into ``pdata[pd:]``. Returns
    (status, aux, line end, path end, entry type)."""
    p, new_pd, bad, _ = decode_path(buf, start, encoding, lut, pdata, pd, -1, 0, 0)
    st, ax = path_status(buf, start, p, bad, encoding, pdata, pd, new_pd)
    etype = 0
    if st == OK:
        st, ax, p, _, etype = numbers(buf, p, ncols, type_ok, kinds, row)
    st, ax, end = line_end(buf, start, p, st, ax, ncols)
    return st, ax, end, new_pd, etype


@njit(cache=True, nogil=True)
def parse_lines(  # type: ignore[no-untyped-def]
    buf, encoding, ncols, luts, type_ok, kinds, ints, etype,
    pdata, poff, status, aux, lstart, lend,
):  # fmt: skip
    """Parse every line of ``buf``. Per line: the numeric columns in ``ints`` (column
    order, as int64 bits; uint64 columns to be viewed as such), the entry type, the path
    bytes in ``pdata[poff[i]:poff[i+1]]``, the status (``OK`` or why not) with ``aux``, and
    where the line lies in ``buf``. Returns the number of lines."""
    lut = luts[0] if encoding == BASE64 else luts[1]
    pos = 0
    n = 0
    pd = 0
    poff[0] = 0
    while pos < len(buf):
        st, ax, end, new_pd, t = parse_line(buf, pos, encoding, ncols, lut, type_ok, kinds,
                                            ints[n], pdata, pd)  # fmt: skip
        if st == OK:
            pd = new_pd
            etype[n] = t
        lstart[n] = pos
        lend[n] = end
        status[n] = st
        aux[n] = ax
        poff[n + 1] = pd
        n += 1
        pos = end + 1
    return n
