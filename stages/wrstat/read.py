"""The ``read`` source: stats files, decompressed as a stream, cut into chunks of whole lines.

Nothing is read whole: compressed blocks go through the decompressor (isal's, where the
``isal`` package is installed, else zlib's; multi-member gzip included) and out come chunks
of about ``chunk_mib`` MiB ending at a line end, each with its file's volume, mount path,
snapshot time and path encoding, and the number of its first line. At the end of each file
a note says how many lines it had and whether it was read to its end: a truncated or
corrupt gzip stream yields every complete line it can, the partial last line is rejected,
and the file is reported as incomplete (the run then exits 3).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import numpy as np

from pipeline import Context
from stages.streams import Lines, Progress, Stream
from stages.wrstat import layout as K
from stages.wrstat.escape import go_escape
from stages.wrstat.layout import detect
from stages.wrstat.naming import StatsFile, discover

log = logging.getLogger("stages.wrstat.read")

#: the compiled line counter, loaded once in the process workers are forked from
WORKER_PRELOAD = ["stages.wrstat.parse:warm"]

MIB = 1 << 20


def read_stats(
    ctx: Context,
    path: str,
    max_age_days: float | None = None,
    chunk_mib: float = 4.0,
    snapshots: str | None = "newest",
) -> Iterator[dict[str, Any]]:
    """Chunks of the newest stats file of each volume under ``path`` (or of the one file
    ``path``); with ``snapshots: all``, of every snapshot of each volume, oldest first (to
    fill the history from older output). Files are shared out among the replicas."""
    if (snapshots or "newest") not in ("newest", "all"):
        raise ValueError(f"snapshots must be 'newest' or 'all', got {snapshots!r}")
    every = snapshots == "all"
    files = discover(path, max_age_days, every)[ctx.replica :: ctx.replicas]
    progress = Progress(ctx, sum(stats.path.stat().st_size for stats in files))
    for stats in files:
        yield from read_file(ctx, stats, max(1, int(chunk_mib * MIB)), progress)
        progress.file_done(stats.path.stat().st_size)


def _mount(stats: StatsFile, sample: bytes, encoding: int, ncols: int) -> str:
    """The mount path: from the name (wrstat 6.2 on), else from the first path in the file,
    up to the component that names the volume."""
    if stats.mount:
        return stats.mount
    from stages.wrstat.parse import parse  # noqa: PLC0415 - compiled: load where used

    end = sample.rfind(b"\n") + 1
    parsed = parse(np.frombuffer(sample[:end], dtype=np.uint8), encoding, ncols)
    for i in np.flatnonzero(parsed.status == K.OK)[:100].tolist():
        path = parsed.path_data[parsed.path_off[i] : parsed.path_off[i + 1]].tobytes()
        comps = path.decode("utf-8", "surrogateescape").split("/")
        if stats.volume in comps:
            return "/".join(comps[: comps.index(stats.volume) + 1])
    log.warning("%s: no path names the volume %r; its mount path is taken to be /%s",
                stats.path, stats.volume, stats.volume)  # fmt: skip
    return "/" + stats.volume


def read_file(
    ctx: Context, stats: StatsFile, chunk_bytes: int, progress: Progress | None = None
) -> Iterator[dict[str, Any]]:
    from stages.wrstat.parse import count_lines  # noqa: PLC0415 - compiled: load where used

    name = str(stats.path)
    meta: dict[str, Any] = {"file": name, "volume": stats.volume, "snapshot": stats.snapshot}
    lines = Lines(chunk_bytes)
    next_line = 1

    def chunk(taken: tuple[bytes, int]) -> dict[str, Any]:
        nonlocal next_line
        data, cut = taken
        if "encoding" not in meta:
            _describe(meta, stats, data[: min(cut, 65536)])
        view = np.frombuffer(data, dtype=np.uint8, count=cut)
        item = {"kind": "chunk", **meta, "line": next_line, "data": view}
        next_line += int(count_lines(view))
        return item

    gunzip = Stream(stats.path, chunk_bytes, progress, gzipped=True)
    for piece in gunzip:
        lines.add(piece)
        while (taken := lines.take()) is not None:
            yield chunk(taken)
    problem = gunzip.problem
    if (taken := lines.take(final=True)) is not None:
        yield chunk(taken)
    tail = lines.rest()
    if tail:  # the last line has no line end
        if problem is None:  # complete, only unterminated
            yield chunk((tail + b"\n", len(tail) + 1))
        else:
            yield {
                "kind": "reject",
                "file": name,
                "line": next_line,
                "reason": "the file ends in the middle of this line",
                "raw": go_escape(tail),
            }
            next_line += 1
    if "encoding" not in meta:
        _describe(meta, stats, b"")
    count = next_line - 1
    if problem:
        ctx.input_incomplete(name, f"{problem}; {count:,} lines read up to there")
    yield {"kind": "file", **meta, "lines": count, "complete": problem is None,
           "problem": problem}  # fmt: skip


def _describe(meta: dict[str, Any], stats: StatsFile, sample: bytes) -> None:
    """Settle the path encoding, column count and mount path from the first lines."""
    found = detect(sample)
    if found is None:
        log.warning("%s: the first lines are not wrstat stats lines; each will be rejected",
                    stats.path)  # fmt: skip
        found = (K.BASE64, 11)
    meta["encoding"], meta["ncols"] = found
    meta["mount"] = _mount(stats, sample, *found)
