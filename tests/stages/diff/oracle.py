"""A plain reference file-level diff: every line parsed in Python, a dict of identities, the
rules written out one by one. The tests' oracle; slow and simple on purpose, it shares no
code with ``stages.diff``."""

from __future__ import annotations

import gzip
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from stages.wrstat.escape import go_escape
from tests.stages.wrstat.oracle import Bad, encoding_of, parse_line


@dataclass(frozen=True)
class Entry:
    line: int
    path: bytes
    type: str
    size: int
    mtime: int
    uid: int
    gid: int
    nlink: int


def read(path: Path) -> tuple[dict[tuple[int, int], list[Entry]], int, int]:
    """Entries by (dev, inode), each list in line order; lines read; lines rejected."""
    raw = gzip.decompress(path.read_bytes()).split(b"\n")
    if raw and raw[-1] == b"":
        raw.pop()
    by_id: dict[tuple[int, int], list[Entry]] = defaultdict(list)
    encoding = encoding_of(raw[0])
    ncols = raw[0].count(b"\t") + 1
    bad = 0
    for n, line in enumerate(raw, 1):
        try:
            e = parse_line(line, encoding, ncols)
        except Bad:
            bad += 1
            continue
        fields = line.split(b"\t")
        inode, dev = int(fields[8]), int(fields[10])
        by_id[(dev, inode)].append(Entry(n, e.path, e.type, e.size, e.mtime, e.uid, e.gid, e.nlink))
    return by_id, len(raw), bad


def _norm(path: bytes) -> bytes:
    return path[:-1] if len(path) > 1 and path.endswith(b"/") else path


@dataclass
class Result:
    created: list[Entry]
    deleted: list[Entry]
    modified: list[tuple[Entry, Entry]]
    moved: list[tuple[Entry, Entry]]
    unchanged: int


def diff(old_file: Path, new_file: Path) -> Result:
    old, _, _ = read(old_file)
    new, _, _ = read(new_file)
    r = Result([], [], [], [], 0)
    for ident in old.keys() | new.keys():
        olds, news = old.get(ident, []), new.get(ident, [])
        if not olds or not news or olds[0].type != news[0].type:
            r.deleted += olds
            r.created += news
            continue
        left_new = list(news)
        left_old = []
        for o in olds:
            same = next((n for n in left_new if _norm(n.path) == _norm(o.path)), None)
            if same is None:
                left_old.append(o)
                continue
            left_new.remove(same)
            if (o.size, o.mtime) == (same.size, same.mtime):
                r.unchanged += 1
            else:
                r.modified.append((o, same))
        for o, n in zip(left_old, left_new, strict=False):
            r.moved.append((o, n))
        r.deleted += left_old[len(left_new) :]
        r.created += left_new[len(left_old) :]
    return r


def usage(e: Entry) -> int:
    return e.size // max(e.nlink, 1)


def group_figures(r: Result) -> dict[int, list[int]]:
    """gid -> created, created bytes, deleted, deleted bytes, modified, grown bytes, moved."""
    out: dict[int, list[int]] = defaultdict(lambda: [0] * 7)
    for e in r.created:
        out[e.gid][0] += 1
        out[e.gid][1] += usage(e)
    for e in r.deleted:
        out[e.gid][2] += 1
        out[e.gid][3] += usage(e)
    for o, n in r.modified:
        out[n.gid][4] += 1
        out[n.gid][5] += usage(n) - usage(o)
    for _, n in r.moved:
        out[n.gid][6] += 1
    return dict(out)


def _num(v: int | None) -> str:
    return "-" if v is None else str(v)


def list_rows(r: Result) -> dict[str, set[tuple[str, ...]]]:
    """What each change list must hold, as TSV cells."""

    def row(
        path: bytes, old_path: bytes | None, e: Entry, before: Entry | None, after: Entry | None
    ) -> tuple[str, ...]:
        return (
            go_escape(path),
            "-" if old_path is None else go_escape(old_path),
            e.type,
            str(e.uid),
            str(e.gid),
            _num(before and before.size),
            _num(after and after.size),
            _num(before and before.mtime),
            _num(after and after.mtime),
        )

    return {
        "created": {row(e.path, None, e, None, e) for e in r.created},
        "deleted": {row(e.path, None, e, e, None) for e in r.deleted},
        "modified": {row(n.path, None, n, o, n) for o, n in r.modified},
        "moved": {row(n.path, o.path, n, o, n) for o, n in r.moved},
    }
