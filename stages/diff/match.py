"""Matching the entries of two snapshots by identity, and what the matches add up to.

Identity is (device, inode). For each identity, with its old entries and its new ones each
in line order:

* only new entries: every one is ``CREATED``; only old ones: every one is ``DELETED``;
* the type changed (a file where a symlink was: the inode was reused): the old entries are
  ``DELETED`` and the new ones ``CREATED``;
* otherwise an old and a new entry with the same path are a pair: ``MODIFIED`` if the size
  or the mtime changed, else unchanged; the old and new entries left over are paired in
  line order as ``MOVED`` (same identity, new path; its size and mtime may have changed too,
  and are kept before and after); what is left after that is ``DELETED`` (old) or
  ``CREATED`` (new): a hard link removed or added.

Every entry ends up in exactly one of: created, deleted, or one side of a pair, so the
counts balance: old entries = deleted + pairs, new entries = created + pairs.

Bytes are counted as the usage reports count them, ``size // nlink`` (nlink 0 as 1), so a
file with two links counts its size once over its two entries, and a group's created
minus deleted bytes plus its growth is the change in its usage.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from pipeline import Columns

UNCHANGED, CREATED, DELETED, MODIFIED, MOVED = 0, 1, 2, 3, 4
KIND_NAMES = {CREATED: "created", DELETED: "deleted", MODIFIED: "modified", MOVED: "moved"}


@njit(cache=True, nogil=True)
def _match(order, n_old, dev, inode, etype, size, mtime, phash, kind, other):  # type: ignore[no-untyped-def]
    """Fill ``kind`` and ``other`` (the partner's row, -1 for none) of every row; rows
    below ``n_old`` are old. ``order``: the rows sorted by (dev, inode), old before new
    and each in line order within an identity."""
    n = len(order)
    i = 0
    while i < n:
        a = order[i]
        j = i + 1
        while j < n and inode[order[j]] == inode[a] and dev[order[j]] == dev[a]:
            j += 1
        k = i
        while k < j and order[k] < n_old:
            k += 1
        if k in (i, j) or etype[order[i]] != etype[order[k]]:
            for m in range(i, j):
                kind[order[m]] = DELETED if m < k else CREATED
            i = j
            continue
        for o in range(i, k):  # the same path on both sides
            ro = order[o]
            for q in range(k, j):
                rq = order[q]
                if other[rq] < 0 and phash[rq] == phash[ro]:
                    other[ro] = rq
                    other[rq] = ro
                    same = size[ro] == size[rq] and mtime[ro] == mtime[rq]
                    kind[ro] = UNCHANGED if same else MODIFIED
                    kind[rq] = kind[ro]
                    break
        q = k
        for o in range(i, k):  # the rest, paired in line order
            ro = order[o]
            if other[ro] >= 0:
                continue
            while q < j and other[order[q]] >= 0:
                q += 1
            if q < j:
                rq = order[q]
                other[ro] = rq
                other[rq] = ro
                kind[ro] = MOVED
                kind[rq] = MOVED
                q += 1
            else:
                kind[ro] = DELETED
        for q in range(k, j):
            if other[order[q]] < 0:
                kind[order[q]] = CREATED
        i = j


@dataclass
class Matched:
    """Both sides' entries (old rows first) with each row's kind and partner row."""

    rows: Columns
    old_count: int
    kind: np.ndarray
    other: np.ndarray

    def of(self, k: int, side: int) -> np.ndarray:
        """Rows of kind ``k`` on one side (0 old, 1 new), in line order."""
        lo, hi = (0, self.old_count) if side == 0 else (self.old_count, len(self.kind))
        return np.flatnonzero(self.kind[lo:hi] == k) + lo

    def counts(self) -> dict[str, int]:
        new = self.kind[self.old_count :]
        return {
            "old_entries": self.old_count,
            "new_entries": len(new),
            "created": int(np.count_nonzero(new == CREATED)),
            "deleted": int(np.count_nonzero(self.kind[: self.old_count] == DELETED)),
            "modified": int(np.count_nonzero(new == MODIFIED)),
            "moved": int(np.count_nonzero(new == MOVED)),
            "unchanged": int(np.count_nonzero(new == UNCHANGED)),
        }


def _in_order(line: np.ndarray) -> bool:
    return len(line) < 2 or bool(np.all(line[1:] > line[:-1]))


def match(rows: Columns, old_count: int) -> Matched:
    """Match the entries of two snapshots (see the module docstring): ``rows`` holds the
    old snapshot's entries, then the new one's, each side in line order. The identity and
    path-hash columns are dropped from the result: nothing after the matching needs them."""
    line = rows["line"]
    if not (_in_order(line[:old_count]) and _in_order(line[old_count:])):
        # each side in line order (delivery out of order, after a replica was restarted)
        perm = np.concatenate(
            [
                np.argsort(line[:old_count], kind="stable"),
                old_count + np.argsort(line[old_count:], kind="stable"),
            ]
        )
        rows = rows.select(perm)
        line = rows["line"]
    dev, inode = rows["dev"], rows["inode"]
    if len(dev) and bool(np.all(dev == dev[0])):
        order = np.argsort(inode, kind="stable")
    else:
        order = np.lexsort((inode, dev))  # stable too: old before new, each in line order
    kind = np.zeros(len(line), dtype=np.uint8)
    other = np.full(len(line), -1, dtype=np.int64)
    _match(
        order,
        old_count,
        dev,
        inode,
        rows["type"],
        rows["size"],
        rows["mtime"],
        rows["phash"],
        kind,
        other,
    )
    del order
    kept = Columns({n: a for n, a in rows.items() if n not in ("dev", "inode", "phash", "side")})
    return Matched(kept, old_count, kind, other)


def match_sides(old: Columns, new: Columns) -> Matched:
    """``match`` of two sides given apart."""
    both = Columns({n: np.concatenate([old[n], new[n]]) for n in old.names})
    return match(both, len(old))


def usage(rows: Columns, idx: np.ndarray) -> np.ndarray:
    """Bytes as the reports count them: size // nlink (nlink 0 as 1)."""
    out: np.ndarray = rows["size"][idx] // np.maximum(rows["nlink"][idx], 1).astype(np.int64)
    return out


#: per-group figures, in column order
GROUP_FIGURES = ("created", "created_bytes", "deleted", "deleted_bytes", "modified",
                 "grown_bytes", "moved")  # fmt: skip
#: the columns of the largest files created
LARGEST = ("path", "size", "uid", "gid", "mtime")


def _sums(gids: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact int64 sums of ``values`` per gid: (gids, sums)."""
    if not len(gids):
        return np.empty(0, np.uint32), np.empty(0, np.int64)
    order = np.argsort(gids, kind="stable")
    g = gids[order]
    starts = np.flatnonzero(np.concatenate([[True], g[1:] != g[:-1]]))
    return g[starts], np.add.reduceat(values[order], starts)


def per_group(m: Matched) -> Columns:
    """Per gid (the new entry's for created, modified and moved; the old one's for
    deleted): entries created, deleted, modified and moved, bytes created and deleted, and
    how much the modified entries grew (negative: shrank)."""
    r = m.rows
    created, deleted = m.of(CREATED, 1), m.of(DELETED, 0)
    modified, moved = m.of(MODIFIED, 1), m.of(MOVED, 1)
    figures = [
        (created, np.ones(len(created), np.int64)),
        (created, usage(r, created)),
        (deleted, np.ones(len(deleted), np.int64)),
        (deleted, usage(r, deleted)),
        (modified, np.ones(len(modified), np.int64)),
        (modified, usage(r, modified) - usage(r, m.other[modified])),
        (moved, np.ones(len(moved), np.int64)),
    ]
    per = [_sums(r["gid"][idx], values) for idx, values in figures]
    gids = np.unique(np.concatenate([g for g, _ in per])).astype(np.uint32)
    out: dict[str, np.ndarray] = {"gid": gids}
    for name, (g, sums) in zip(GROUP_FIGURES, per, strict=True):
        col = np.zeros(len(gids), np.int64)
        col[np.searchsorted(gids, g)] = sums
        out[name] = col
    return Columns(out)


def add_groups(parts: list[Columns]) -> Columns:
    """Per-group figures from several partitions, added up."""
    parts = [p for p in parts if len(p)]
    if not parts:
        return Columns(
            {"gid": np.empty(0, np.uint32)} | {n: np.empty(0, np.int64) for n in GROUP_FIGURES}
        )
    gid = np.concatenate([p["gid"] for p in parts])
    out: dict[str, np.ndarray] = {}
    for name in GROUP_FIGURES:
        g, out[name] = _sums(gid, np.concatenate([p[name] for p in parts]))
    out["gid"] = g
    return Columns(out)


def largest_created(m: Matched, n: int) -> np.ndarray:
    """Rows of the ``n`` largest regular files created, largest first (ties: line order)."""
    created = m.of(CREATED, 1)
    files = created[m.rows["type"][created] == ord("f")]
    sizes = m.rows["size"][files]
    if len(files) > n:
        keep = np.argpartition(-sizes, n - 1)[:n]
        files, sizes = files[keep], sizes[keep]
    out: np.ndarray = files[np.lexsort((files, -sizes))]
    return out
