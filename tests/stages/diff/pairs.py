"""Hand-written pairs of stats files for the diff tests: every kind of change, once."""

from __future__ import annotations

import base64
import gzip
from pathlib import Path

#: (path, type, size, mtime, inode, nlink, dev, gid); dev 100 unless given
Row = tuple[bytes, str, int, int, int, int, int, int]


def stats_line(
    path: bytes,
    etype: str,
    size: int,
    mtime: int,
    inode: int,
    nlink: int,
    dev: int,
    gid: int,
    uid: int = 500,
) -> bytes:
    fields = [
        base64.b64encode(path),
        b"%d" % size,
        b"%d" % uid,
        b"%d" % gid,
        b"%d" % mtime,
        b"%d" % mtime,
        b"%d" % mtime,
        etype.encode(),
        b"%d" % inode,
        b"%d" % nlink,
        b"%d" % dev,
    ]
    return b"\t".join(fields) + b"\n"


def write(path: Path, rows: list[Row | bytes]) -> Path:
    """A v3-era stats file of ``rows`` (raw bytes: a line as it is, e.g. a bad one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [r if isinstance(r, bytes) else stats_line(*r) for r in rows]
    path.write_bytes(gzip.compress(b"".join(lines)))
    return path


OLD_ROWS: list[Row | bytes] = [
    (b"/v", "d", 4096, 900, 1, 2, 100, 1),
    (b"/v/keep", "f", 100, 1000, 10, 1, 100, 1),
    (b"/v/grow", "f", 100, 1000, 11, 1, 100, 1),
    (b"/v/touch", "f", 100, 1000, 12, 1, 100, 2),
    (b"/v/gone", "f", 500, 1000, 13, 1, 100, 2),
    (b"/v/old-name", "f", 70, 1000, 14, 1, 100, 1),
    (b"/v/hl-a", "f", 1000, 1000, 15, 2, 100, 1),
    (b"/v/hl-b", "f", 1000, 1000, 15, 2, 100, 1),
    (b"/v/link", "l", 10, 1000, 16, 1, 100, 1),
    (b"/v/dir", "d", 4096, 1000, 17, 2, 100, 1),
    (b"/v/other-dev", "f", 5, 1000, 10, 1, 101, 2),
    b"not a stats line\n",
    (b"/v/x", "f", 400, 1000, 18, 1, 100, 1),
]

NEW_ROWS: list[Row | bytes] = [
    (b"/v", "d", 4096, 900, 1, 2, 100, 1),
    (b"/v/keep", "f", 100, 1000, 10, 1, 100, 1),
    (b"/v/grow", "f", 150, 2000, 11, 1, 100, 1),
    (b"/v/touch", "f", 100, 1500, 12, 1, 100, 2),
    (b"/v/new", "f", 300, 2000, 19, 1, 100, 2),
    (b"/v/new-name", "f", 70, 1000, 14, 1, 100, 1),
    (b"/v/hl-a", "f", 1000, 1000, 15, 2, 100, 1),
    (b"/v/hl-c", "f", 1000, 1000, 15, 2, 100, 1),
    (b"/v/link", "f", 20, 2000, 16, 1, 100, 1),
    (b"/v/dir/", "d", 4096, 1000, 17, 2, 100, 1),  # wrstat 6 ends directories in "/"
    (b"/v/x", "f", 400, 1000, 18, 2, 100, 1),
    (b"/v/y", "f", 400, 1000, 18, 2, 100, 1),
    b"/v/broken\t1\n",
]


#: what a diff of the scenario finds
SCENARIO_COUNTS = {"old_entries": 12, "new_entries": 12, "created": 3, "deleted": 3,
                   "modified": 2, "moved": 2, "unchanged": 5}  # fmt: skip


def scenario(folder: Path) -> tuple[Path, Path]:
    """The two snapshots: old (20261101) and new (20261102) of volume ``scratch1``."""
    old = write(folder / "20261101_scratch1.a.b.stats.gz", OLD_ROWS)
    new = write(folder / "20261102_scratch1.a.b.stats.gz", NEW_ROWS)
    return old, new
