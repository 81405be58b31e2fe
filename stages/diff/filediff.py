"""A file-level diff of one partition of two snapshots: matched entries to change lists and
figures.

``lists`` writes the four change lists of a ``Matched`` (created, deleted, modified, moved)
with their paths read again from the stats files as a stream, a chunk at a time, so the
paths held at once are one chunk's (and the old paths of the moved entries). ``figures``
gives what a report adds up over partitions: the counts, per-group figures and the largest
files created.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from pipeline import Columns
from stages.diff.listing import MISSING, Paths, header, iter_paths, read_paths, write_rows
from stages.diff.match import (
    CREATED,
    DELETED,
    KIND_NAMES,
    MODIFIED,
    MOVED,
    Matched,
    largest_created,
    per_group,
)


def _numbers(
    r: Columns, idx: np.ndarray, before: np.ndarray | None, after: np.ndarray | None
) -> np.ndarray:
    """UID, GID, sizes and mtimes before and after, per row (``MISSING``: no such side)."""
    numbers = np.full((len(idx), 6), MISSING, dtype=np.int64)
    numbers[:, 0] = r["uid"][idx]
    numbers[:, 1] = r["gid"][idx]
    for col, which in ((2, before), (3, after)):
        if which is not None:
            numbers[:, col] = r["size"][which]
            numbers[:, col + 2] = r["mtime"][which]
    return numbers


def lists(
    m: Matched,
    old_file: Path,
    new_file: Path,
    folder: Path,
    suffix: str = "",
    named: np.ndarray | None = None,
) -> tuple[dict[str, Path], dict[int, str]]:
    """Write ``<kind><suffix>.tsv`` for each kind of change into ``folder``; returns them,
    and the paths of the created rows ``named`` asks for (the largest files created: found
    on the way, rather than by reading the file once more). Rows are in line order: of the
    old file for deleted entries, of the new one else."""
    wanted = np.sort(named) if named is not None else np.empty(0, np.int64)
    found: dict[int, str] = {}
    r = m.rows
    line = r["line"]
    out = {name: folder / f"{name}{suffix}.tsv" for name in KIND_NAMES.values()}
    files: dict[int, BinaryIO] = {k: out[name].open("wb") for k, name in KIND_NAMES.items()}
    try:
        for f in files.values():
            f.write(header())
        deleted = m.of(DELETED, 0)
        for lo, hi, paths in iter_paths(old_file, line[deleted]):
            idx = deleted[lo:hi]
            write_rows(
                files[DELETED],
                paths,
                Paths.none(len(idx)),
                r["type"][idx],
                _numbers(r, idx, idx, None),
            )
        moved = m.of(MOVED, 1)
        moved_from = np.sort(line[m.other[moved]])
        old_paths = read_paths(old_file, moved_from)
        rows = np.concatenate([m.of(CREATED, 1), m.of(MODIFIED, 1), moved])
        rows = rows[np.argsort(line[rows], kind="stable")]
        for lo, hi, paths in iter_paths(new_file, line[rows]):
            idx, kinds = rows[lo:hi], m.kind[rows[lo:hi]]
            for k in (CREATED, MODIFIED, MOVED):
                pick = np.flatnonzero(kinds == k)
                if not len(pick):
                    continue
                sel = idx[pick]
                before = None if k == CREATED else m.other[sel]
                olds = Paths.none(len(sel))
                if k == MOVED:
                    assert before is not None
                    olds = old_paths.take(np.searchsorted(moved_from, line[before]))
                write_rows(
                    files[k], paths.take(pick), olds, r["type"][sel], _numbers(r, sel, before, sel)
                )
                if k == CREATED and len(wanted):
                    for j in np.flatnonzero(np.isin(sel, wanted)).tolist():
                        found[int(sel[j])] = paths.text(int(pick[j]))
    finally:
        for f in files.values():
            f.close()
    return out, found


def list_and_count(
    m: Matched, old_file: Path, new_file: Path, folder: Path, largest: int, suffix: str = ""
) -> tuple[dict[str, Path], dict[str, Any]]:
    """``lists``, and the partition's counts, per-group figures and ``largest`` files
    created."""
    r = m.rows
    top = largest_created(m, largest)
    written, paths = lists(m, old_file, new_file, folder, suffix, top)
    big = Columns(
        path=np.array([paths[int(k)] for k in top], dtype=object),
        size=r["size"][top].copy(),
        uid=r["uid"][top].copy(),
        gid=r["gid"][top].copy(),
        mtime=r["mtime"][top].copy(),
    )
    return written, {"counts": m.counts(), "groups": per_group(m), "largest": big}
