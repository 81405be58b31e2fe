"""The entries of a stats file as the file-level diff needs them: one row per accepted line.

Per entry: the line it came from, its identity (``dev``, ``inode``), its type, size, mtime,
owner, link count and a 64-bit hash of its path. The path itself is not kept: a diff holds
tens of millions of entries and only the ones that changed need their paths, which
``stages.diff.listing`` reads again from the files afterwards. A directory's path is hashed
without the "/" wrstat 6 ends it with, so snapshots from two wrstat eras still match.

>>> from stages.wrstat.parse import SAMPLE, parse
>>> import numpy as np
>>> e = entries(parse(np.frombuffer(SAMPLE, np.uint8), 0, 11), first_line=1, side=OLD)
>>> e["line"].tolist(), e["inode"].tolist(), bytes(e["type"][:1])
([1, 2], [7, 8], b'f')
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

from pipeline import Columns
from stages.wrstat import layout as K
from stages.wrstat.parse import Parsed

#: which snapshot an entry is from
OLD, NEW = 0, 1

_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)


@njit(cache=True, nogil=True)
def path_hashes(pool, offsets, rows):  # type: ignore[no-untyped-def]
    """FNV-1a (64-bit) of each path ``pool[offsets[r]:offsets[r + 1]]`` for ``r`` in
    ``rows``, a trailing "/" left out (but not of "/" itself)."""
    out = np.empty(len(rows), dtype=np.uint64)
    for k in range(len(rows)):
        r = rows[k]
        s, e = offsets[r], offsets[r + 1]
        if e - s > 1 and pool[e - 1] == 47:
            e -= 1
        h = _FNV_OFFSET
        for i in range(s, e):
            h = (h ^ np.uint64(pool[i])) * _FNV_PRIME
        out[k] = h
    return out


def path_hash(path: bytes) -> int:
    """``path_hashes`` of one path (for tests and small lookups)."""
    pool = np.frombuffer(path, dtype=np.uint8)
    return int(path_hashes(pool, np.array([0, len(path)]), np.array([0]))[0])


def entries(parsed: Parsed, first_line: int, side: int) -> Columns:
    """The accepted lines of a parsed chunk as entry rows; ``first_line``: the chunk's
    first line number; ``side``: ``OLD`` or ``NEW``."""
    rows = np.flatnonzero(parsed.status == K.OK)
    c = parsed.columns
    return Columns(
        side=np.full(len(rows), side, dtype=np.uint8),
        line=rows.astype(np.int64) + first_line,
        dev=c["dev"][rows],
        inode=c["inode"][rows],
        type=c["type"][rows],
        size=c["size"][rows],
        mtime=c["mtime"][rows],
        uid=c["uid"][rows],
        gid=c["gid"][rows],
        nlink=c["nlink"][rows].astype(np.uint32),
        phash=path_hashes(parsed.path_data, parsed.path_off, rows),
    )


#: the entry columns and their types, for empty sides and checks
COLUMNS: dict[str, Any] = {
    "side": np.uint8,
    "line": np.int64,
    "dev": np.uint64,
    "inode": np.uint64,
    "type": np.uint8,
    "size": np.int64,
    "mtime": np.int64,
    "uid": np.uint32,
    "gid": np.uint32,
    "nlink": np.uint32,
    "phash": np.uint64,
}


#: the columns kept per entry (the side is known from where it is kept)
KEPT = [name for name in COLUMNS if name != "side"]


class Store:
    """Both snapshots' entries as they arrive, put together at the end with the old ones
    first (``rows``).

    Batches are gathered into blocks of about ``block`` rows per column: a block is one large
    allocation, given back to the system as soon as it is let go, where thousands of small
    arrays would leave the process's heap as large as they ever were. Putting the blocks
    together column by column, each column's blocks let go as soon as it is done, the peak is
    the entries plus one column."""

    def __init__(self, block: int = 1 << 20) -> None:
        self.block = block
        self.counts = [0, 0]
        self._pending: tuple[dict[str, list[np.ndarray]], ...] = ({}, {})
        self._pending_rows = [0, 0]
        self._blocks: tuple[dict[str, list[np.ndarray]], ...] = (
            {n: [] for n in KEPT}, {n: [] for n in KEPT})  # fmt: skip
        for side in (OLD, NEW):
            self._pending[side].update({n: [] for n in KEPT})

    def add(self, side: int, batch: Columns) -> None:
        """Keep a batch of one side's entries (in line order, after the earlier ones)."""
        for name, parts in self._pending[side].items():
            parts.append(batch[name])
        self.counts[side] += len(batch)
        self._pending_rows[side] += len(batch)
        if self._pending_rows[side] >= self.block:
            self._gather(side)

    def _gather(self, side: int) -> None:
        for name, parts in self._pending[side].items():
            if parts:
                self._blocks[side][name].append(np.concatenate(parts))
                parts.clear()
        self._pending_rows[side] = 0

    def rows(self) -> tuple[Columns, int]:
        """All the entries, the old ones first, and how many are old; the store is empty
        afterwards."""
        self._gather(OLD)
        self._gather(NEW)
        out = {}
        for name in KEPT:
            old, new = self._blocks[OLD][name], self._blocks[NEW][name]
            out[name] = np.concatenate([np.empty(0, COLUMNS[name]), *old, *new])
            old.clear()
            new.clear()
        n_old = self.counts[OLD]
        self.counts = [0, 0]
        return Columns(out), n_old


def empty() -> Columns:
    return Columns({name: np.empty(0, dtype=t) for name, t in COLUMNS.items()})


def concat(parts: list[Columns]) -> Columns:
    """Entry batches as one; the batches' memory can be let go afterwards."""
    if not parts:
        return empty()
    return Columns({name: np.concatenate([p[name] for p in parts]) for name in COLUMNS})


def warm() -> None:
    """Load the compiled hash (compiling it once after installing)."""
    path_hash(b"/")
