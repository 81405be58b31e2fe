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
