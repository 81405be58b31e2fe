"""Hash tables for compiled code: byte strings to ids, and integer keys to rows.

numba cannot hold Python dicts of bytes, so these keep their state in numpy arrays that the
compiled kernels read and update; the Python side only grows the arrays between chunks
(``reserve``), so a kernel never runs out of room in the middle of one.
"""

from __future__ import annotations

import numpy as np
from numba import njit

_FNV_OFFSET = np.uint64(14695981039346656037)
_FNV_PRIME = np.uint64(1099511628211)
_EMPTY = -1


@njit(cache=True, nogil=True)
def hash_bytes(data, s, e):  # type: ignore[no-untyped-def]
    h = _FNV_OFFSET
    for i in range(s, e):
        h = (h ^ np.uint64(data[i])) * _FNV_PRIME
    return h


@njit(cache=True, nogil=True)
def same(pool, ps, pe, data, s, e):  # type: ignore[no-untyped-def]
    if pe - ps != e - s:
        return False
    for k in range(e - s):
        if pool[ps + k] != data[s + k]:
            return False
    return True


@njit(cache=True, nogil=True)
def intern(pool, starts, hashes, slots, state, data, s, e, insert):  # type: ignore[no-untyped-def]
    """The id of ``data[s:e]``; a new id if unseen and ``insert``, else -1.
    ``state`` holds [ids used, pool bytes used]."""
    h = hash_bytes(data, s, e)
    mask = len(slots) - 1
    i = np.int64(h & np.uint64(mask))
    while True:
        sid = slots[i]
        if sid == _EMPTY:
            break
        if hashes[sid] == h and same(pool, starts[sid], starts[sid + 1], data, s, e):
            return sid
        i = (i + 1) & mask
    if not insert:
        return -1
    sid = state[0]
    used = state[1]
    for k in range(e - s):
        pool[used + k] = data[s + k]
    starts[sid + 1] = used + (e - s)
    hashes[sid] = h
    slots[i] = sid
    state[0] = sid + 1
    state[1] = used + (e - s)
    return sid


@njit(cache=True, nogil=True)
def _rehash_strings(hashes, count, slots):  # type: ignore[no-untyped-def]
    mask = len(slots) - 1
    for sid in range(count):
        i = np.int64(hashes[sid] & np.uint64(mask))
        while slots[i] != _EMPTY:
            i = (i + 1) & mask
        slots[i] = sid


def _pow2(n: int) -> int:
    return 1 << max(4, int(n - 1).bit_length())


class Strings:
    """Byte strings interned to dense ids (0, 1, 2, ...)."""

    def __init__(self, ids: int = 1024, nbytes: int = 1 << 16) -> None:
        self.pool = np.empty(nbytes, dtype=np.uint8)
        self.starts = np.zeros(ids + 1, dtype=np.int64)
        self.hashes = np.zeros(ids, dtype=np.uint64)
        self.slots = np.full(_pow2(2 * ids), _EMPTY, dtype=np.int64)
        self.state = np.zeros(2, dtype=np.int64)

    def __len__(self) -> int:
        return int(self.state[0])

    def reserve(self, ids: int, nbytes: int) -> None:
        """Room for ``ids`` more strings of ``nbytes`` more bytes in all."""
        count, used = int(self.state[0]), int(self.state[1])
        if used + nbytes > len(self.pool):
            pool = np.empty(max(2 * len(self.pool), used + nbytes), dtype=np.uint8)
            pool[:used] = self.pool[:used]
            self.pool = pool
        if count + ids > len(self.hashes):
            cap = max(2 * len(self.hashes), count + ids)
            starts = np.zeros(cap + 1, dtype=np.int64)
            starts[: count + 1] = self.starts[: count + 1]
            hashes = np.zeros(cap, dtype=np.uint64)
            hashes[:count] = self.hashes[:count]
            self.starts, self.hashes = starts, hashes
        if 2 * (count + ids) > len(self.slots):
            self.slots = np.full(_pow2(4 * (count + ids)), _EMPTY, dtype=np.int64)
            _rehash_strings(self.hashes, count, self.slots)

    def add(self, value: bytes) -> int:
        self.reserve(1, len(value))
        data = np.frombuffer(value, dtype=np.uint8)
        return int(intern(self.pool, self.starts, self.hashes, self.slots, self.state,
                          data, 0, len(data), True))  # fmt: skip

    def find(self, value: bytes) -> int:
        data = np.frombuffer(value, dtype=np.uint8)
        return int(intern(self.pool, self.starts, self.hashes, self.slots, self.state,
                          data, 0, len(data), False))  # fmt: skip

    def get(self, sid: int) -> bytes:
        return self.pool[self.starts[sid] : self.starts[sid + 1]].tobytes()

    def all(self) -> list[bytes]:
        return [self.get(i) for i in range(len(self))]


@njit(cache=True, nogil=True)
def _mix(a, b, c):  # type: ignore[no-untyped-def]
    h = np.uint64(a) * np.uint64(0x9E3779B97F4A7C15)
    h = (h ^ (h >> np.uint64(29))) + np.uint64(b) * np.uint64(0xBF58476D1CE4E5B9)
    h = (h ^ (h >> np.uint64(31))) + np.uint64(c) * np.uint64(0x94D049BB133111EB)
    return h ^ (h >> np.uint64(32))


@njit(cache=True, nogil=True)
def row_of(keys, slots, state, a, b, c, insert):  # type: ignore[no-untyped-def]
    """The row of key (a, b, c); a new row if unseen and ``insert``, else -1.
    ``state`` holds [rows used]."""
    mask = len(slots) - 1
    i = np.int64(_mix(a, b, c) & np.uint64(mask))
    while True:
        r = slots[i]
        if r == _EMPTY:
            break
        if keys[r, 0] == a and keys[r, 1] == b and keys[r, 2] == c:
            return r
        i = (i + 1) & mask
    if not insert:
        return -1
    r = state[0]
    keys[r, 0] = a
    keys[r, 1] = b
    keys[r, 2] = c
    slots[i] = r
    state[0] = r + 1
    return r


@njit(cache=True, nogil=True)
def _rehash_rows(keys, count, slots):  # type: ignore[no-untyped-def]
    mask = len(slots) - 1
    for r in range(count):
        i = np.int64(_mix(keys[r, 0], keys[r, 1], keys[r, 2]) & np.uint64(mask))
        while slots[i] != _EMPTY:
            i = (i + 1) & mask
        slots[i] = r


class Rows:
    """Integer keys (a, b, c) given dense row numbers, each with a row of int64 values that
    start as ``initial`` (e.g. zeros to add to, the smallest int64 to take maxima of)."""

    def __init__(self, initial: list[int], rows: int = 1024) -> None:
        self.initial = np.asarray(initial, dtype=np.int64)
        self.keys = np.zeros((rows, 3), dtype=np.int64)
        self.values = np.tile(self.initial, (rows, 1))
        self.slots = np.full(_pow2(2 * rows), _EMPTY, dtype=np.int64)
        self.state = np.zeros(1, dtype=np.int64)

    def __len__(self) -> int:
        return int(self.state[0])

    def reserve(self, rows: int) -> None:
        """Room for ``rows`` more rows."""
        count = len(self)
        if count + rows > len(self.keys):
            cap = max(2 * len(self.keys), count + rows)
            keys = np.zeros((cap, 3), dtype=np.int64)
            keys[:count] = self.keys[:count]
            values = np.tile(self.initial, (cap, 1))
            values[:count] = self.values[:count]
            self.keys, self.values = keys, values
        if 2 * (count + rows) > len(self.slots):
            self.slots = np.full(_pow2(4 * (count + rows)), _EMPTY, dtype=np.int64)
            _rehash_rows(self.keys, count, self.slots)
