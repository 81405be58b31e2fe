"""A chunk of stats lines to numpy columns, and rejects for the lines that are not valid."""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numba import njit

from pipeline import Columns
from stages.wrstat import layout as K
from stages.wrstat import lines as L
from stages.wrstat.escape import go_escape
from stages.wrstat.layout import reason


@njit(cache=True, nogil=True)
def count_lines(buf):  # type: ignore[no-untyped-def]
    n = 0
    for c in buf:
        if c == 10:
            n += 1
    return n + (1 if len(buf) and buf[-1] != 10 else 0)


@dataclass
class Parsed:
    """The lines of one chunk: all of them (``status`` says which are accepted)."""

    n: int
    status: np.ndarray
    aux: np.ndarray
    lstart: np.ndarray
    lend: np.ndarray
    path_data: np.ndarray
    path_off: np.ndarray
    columns: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def accepted(self) -> int:
        return int(np.count_nonzero(self.status == K.OK))

    def to_columns(self) -> tuple[Columns, np.ndarray]:
        """The accepted lines as ``Columns`` (``path_start``, ``path_end`` index the
        returned path bytes)."""
        ok = self.status == K.OK
        starts, ends = self.path_off[:-1][ok], self.path_off[1:][ok]
        cols = {name: arr[ok] for name, arr in self.columns.items()}
        return Columns(cols, path_start=starts, path_end=ends), self.path_data


#: (name, dtype, index in the parsed integers); the entry type is kept apart
_INT_COLUMNS = (
    ("size", np.int64, 0), ("uid", np.uint32, 1), ("gid", np.uint32, 2),
    ("atime", np.int64, 3), ("mtime", np.int64, 4), ("ctime", np.int64, 5),
    ("inode", np.uint64, 7), ("nlink", np.int64, 8), ("dev", np.uint64, 9),
    ("apparent", np.int64, 10),
)  # fmt: skip


class Workspace:
    """Arrays reused from chunk to chunk: fresh large arrays would cost page faults on
    every chunk. What ``parse`` returns with a workspace lives until its next use."""

    def __init__(self) -> None:
        self.lines = 0
        self.nbytes = 0

    def arrays(self, lines: int, nbytes: int) -> tuple[np.ndarray, ...]:
        if lines > self.lines:
            self.lines = max(lines, int(self.lines * 1.25))
            n = self.lines
            self.ints = np.empty((n, 11), dtype=np.int64)
            self.etype = np.empty(n, dtype=np.uint8)
            self.poff = np.empty(n + 1, dtype=np.int64)
            self.status = np.empty(n, dtype=np.int16)
            self.aux = np.empty(n, dtype=np.int64)
            self.lstart = np.empty(n, dtype=np.int64)
            self.lend = np.empty(n, dtype=np.int64)
        if nbytes > self.nbytes:
            self.nbytes = max(nbytes, int(self.nbytes * 1.25))
            self.pdata = np.empty(self.nbytes, dtype=np.uint8)
        return (self.ints, self.etype, self.pdata, self.poff, self.status, self.aux,
                self.lstart, self.lend)  # fmt: skip


def parse(
    data: np.ndarray,
    encoding: int,
    ncols: int,
    work: Workspace | None = None,
) -> Parsed:
    """Parse a chunk of whole lines (``data``: uint8)."""
    n_max = int(count_lines(data))
    ints, etype, pdata, poff, status, aux, lstart, lend = (work or Workspace()).arrays(
        n_max, len(data)
    )
    n = L.parse_lines(data, encoding, ncols, L.LUTS, L.TYPE_OK, L.KINDS, ints, etype,
                      pdata, poff, status, aux, lstart, lend)  # fmt: skip
    cols: dict[str, np.ndarray] = {"type": etype[:n]}
    for name, dtype, j in _INT_COLUMNS:
        if name == "apparent" and ncols < 12:
            continue
        col = ints[:n, j]
        cols[name] = col.view(np.uint64) if dtype == np.uint64 else col.astype(dtype, copy=False)
    return Parsed(n, status[:n], aux[:n], lstart[:n], lend[:n], pdata, poff[: n + 1], cols)


def rejects(
    parsed: Parsed,
    data: np.ndarray,
    file: str,
    first_line: int,
    ncols: int,
    encoding: int,
) -> list[dict[str, Any]]:
    """Reject records (file, 1-based line, reason, raw line escaped) for the bad lines."""
    out = []
    for i in np.flatnonzero(parsed.status != K.OK).tolist():
        raw = data[parsed.lstart[i] : parsed.lend[i]].tobytes()
        out.append(
            {
                "kind": "reject",
                "file": file,
                "line": first_line + i,
                "reason": reason(int(parsed.status[i]), int(parsed.aux[i]), ncols, encoding),
                "raw": go_escape(raw),
            }
        )
    return out


#: two stats lines, to run the compiled code once
SAMPLE = (
    b"L2x1c3RyZS9zY3JhdGNoMS9odW1nZW4vcHJvamVjdHMvcDEvYS5iYW0=\t1\t2\t3\t4\t5\t6\tf\t7\t1\t9\n"
    b"L2x1c3RyZS9zY3JhdGNoMS9odW1nZW4vcHJvamVjdHMvcDEvYi5iYW0=\t1\t2\t3\t4\t5\t6\tf\t8\t1\t9\n"
)


@contextlib.contextmanager
def compiling_notice(what: str, after: float = 1.0) -> Iterator[None]:
    """Say on standard error that ``what`` is being compiled, if loading it takes longer
    than ``after`` seconds: the first run after installing compiles it (tens of seconds),
    later runs load it from numba's cache at once."""
    timer = threading.Timer(
        after,
        lambda: print(f"pipeline: compiling {what}, once after installing; later runs load it "
                      "from the cache", file=sys.stderr, flush=True),
    )  # fmt: skip
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
        timer.join()


def warm() -> None:
    """Load the compiled parser (compiling it the first time ever), with the argument types
    a run gives it: a process that calls this before it forks hands it to its children."""
    with compiling_notice("the wrstat line parser"):
        data = np.frombuffer(SAMPLE, dtype=np.uint8)  # read-only, as chunks arrive
        count_lines(data)
        parse(data, K.BASE64, 11)
