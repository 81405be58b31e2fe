"""The stages of a file-level diff run (``pipeline diff OLD NEW``): read, match, write.

* ``read_pair`` (source): both stats files, as chunks of entries (``stages.diff.entries``)
  keyed by inode, the files shared out among its replicas; with ``aggregate``, each file's
  usage tallies as well (``stages.wrstat.tally``), for the aggregate diff. Rejected lines
  and the end-of-file notes go on as they come.
* ``FileDiff`` (keyed by inode): holds its partitions' entries of both files, matches them
  at the end of the stream (``stages.diff.match``), writes its part of the change lists and
  sends on its figures. Memory per replica is its share of the entries, about 60 bytes each.
* ``DiffWriter`` is ``stages.diff.writer``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import Columns, Context
from stages.diff.entries import COLUMNS, NEW, OLD, Store, entries
from stages.diff.filediff import list_and_count
from stages.diff.listing import chunks
from stages.diff.match import match
from stages.streams import Progress

#: compiled code, loaded once in the process workers are forked from
WORKER_PRELOAD = ["stages.wrstat.parse:warm", "stages.diff.filestage:warm"]

#: the key notes travel under through the keyed stage (any replica will do)
NOTE_KEY = 0


def read_pair(
    ctx: Context, old: str, new: str, aggregate: bool = True, chunk_mib: float = 4.0
) -> Iterator[Any]:
    """Entries of ``old`` and ``new`` (see the module docstring)."""
    from stages.wrstat.parse import Workspace, parse, rejects  # noqa: PLC0415 - compiled

    tally = None
    if aggregate:
        from stages.wrstat.basedirs import Rules  # noqa: PLC0415
        from stages.wrstat.tally import Tally  # noqa: PLC0415 - compiled

        tally = Tally(Rules())
    work = Workspace()
    mine = [(OLD, Path(old)), (NEW, Path(new))][ctx.replica :: ctx.replicas]
    progress = Progress(ctx, sum(file.stat().st_size for _, file in mine))
    for side, file in mine:
        for item in chunks(file, chunk_mib, ctx, progress):
            if item["kind"] != "chunk":
                yield {**item, "side": side, "inode": NOTE_KEY}
                continue
            data, enc, ncols, line = item["data"], item["encoding"], item["ncols"], item["line"]
            parsed = parse(data, enc, ncols, work)  # type: ignore[arg-type]
            yield entries(parsed, line, side)  # type: ignore[arg-type]
            for bad in rejects(parsed, data, str(file), line, ncols, enc):  # type: ignore[arg-type]
                yield {**bad, "side": side, "inode": NOTE_KEY}
            if tally is not None:
                tally.add(data, enc, ncols, item["snapshot"], str(file), line)  # type: ignore[arg-type]
        progress.file_done(file.stat().st_size)
    if tally is not None:
        yield {**tally.partial(), "inode": NOTE_KEY}


class FileDiff:
    """Match this replica's share of the entries (see the module docstring).

    ``old``, ``new``: the two stats files (their paths are read again for the lists);
    ``out``: where the lists go; ``largest``: how many of the largest files created to
    report."""

    def __init__(self, old: str, new: str, out: str, largest: int = 20) -> None:
        self.old, self.new, self.out = Path(old), Path(new), Path(out)
        self.largest = largest
        self.store = Store()

    def process(self, item: Any, ctx: Context) -> Any:
        if isinstance(item, Columns):
            if len(item):
                self.store.add(int(item["side"][0]), item)
            return None
        return item

    def finish(self, ctx: Context) -> dict[str, Any]:
        rows, n_old = self.store.rows()
        t0 = time.perf_counter()
        m = match(rows, n_old)
        del rows
        t1 = time.perf_counter()
        self.out.mkdir(parents=True, exist_ok=True)
        parts, found = list_and_count(m, self.old, self.new, self.out, self.largest,
                                      f".part{ctx.replica}")  # fmt: skip
        ctx.log.info(
            "replica %d: %s; matched in %.1f s, lists written in %.1f s",
            ctx.replica,
            ", ".join(f"{k} {v:,}" for k, v in found["counts"].items()),
            t1 - t0,
            time.perf_counter() - t1,
        )
        return {
            "kind": "filediff",
            "replica": ctx.replica,
            **found,
            "parts": {k: str(p) for k, p in parts.items()},
            "peak_rss": _peak_rss(),
        }


def _peak_rss() -> int:
    """This process's peak resident memory, in bytes."""
    import resource  # noqa: PLC0415

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def warm() -> None:
    """Load the compiled matching and listing code (compiling it once after installing)."""
    import io  # noqa: PLC0415

    from stages.diff.entries import warm as warm_entries  # noqa: PLC0415
    from stages.diff.listing import Paths, write_rows  # noqa: PLC0415
    from stages.diff.match import match_sides  # noqa: PLC0415

    warm_entries()
    one = Columns({n: np.zeros(1, dtype=t) for n, t in COLUMNS.items()})
    match_sides(one, one)
    data = np.frombuffer(b"/a", dtype=np.uint8)
    write_rows(io.BytesIO(), Paths(data, np.zeros(1, np.int64), np.full(1, 2, np.int64)),
               Paths.none(1), np.zeros(1, np.uint8), np.zeros((1, 6), np.int64))  # fmt: skip
