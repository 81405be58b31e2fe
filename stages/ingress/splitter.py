"""CSV cut into parts of bounded size, each part starting with the header.

``CsvSplitter`` is a write-only text sink (what a database's ``COPY ... TO STDOUT`` or a
``csv.writer`` writes into); ``split_csv`` cuts a CSV file already written. Both write
``<stem>_split0.csv``, ``<stem>_split1.csv``, ... and rename a single part to
``<stem>.csv``.

Parts are bounded in bytes of UTF-8, the header included, and rows are never cut: a part
is full when its next row would take it past ``max_bytes``. A row is a CSV record: it ends
at a newline outside double quotes, so a quoted field holding newlines stays in one part.
The one exception to the bound is a row that does not fit with the header even in a part
of its own: it gets a part of its own, larger than ``max_bytes``. No part holds the header
alone, unless the input has no rows at all.

>>> import tempfile
>>> from pathlib import Path
>>> folder = Path(tempfile.mkdtemp())
>>> with CsvSplitter(folder / "events", max_bytes=15) as out:
...     _ = out.write("id,n\\n1,10\\n2,20\\n3,30\\n")
>>> [(p.name, p.read_text()) for p in out.parts]
[('events_split0.csv', 'id,n\\n1,10\\n2,20\\n'), ('events_split1.csv', 'id,n\\n3,30\\n')]
"""

from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

import numpy as np

_NEWLINE = 0x0A
_QUOTE = 0x22
# input is scanned this many bytes at a time (numpy arrays of a few times its size)
_CHUNK = 1 << 20


class CsvSplitter:
    """Writes CSV text into parts of at most ``max_bytes`` bytes (see the module doc).

    The first row written is the header, repeated at the top of every part. ``write``
    takes any pieces of text (several rows, or part of one); a row is held back until it
    is complete. ``close()`` (or leaving the ``with`` block) writes a last row that has no
    newline and renames a single part to ``<stem>.csv``; leaving the block on an exception
    removes the parts instead, so a half-written table is never taken for a whole one.
    """

    def __init__(self, path_stem: str | Path, max_bytes: int) -> None:
        if max_bytes < 1:
            raise ValueError(f"max_bytes should be at least 1, not {max_bytes}")
        self.stem = Path(path_stem)
        self.max_bytes = max_bytes
        self._header: bytes | None = None
        self._tail = bytearray()  # the start of a row not complete yet
        self._odd = False  # an odd number of quotes in _tail: inside a quoted field
        self._parts: list[Path] = []
        self._file: BinaryIO | None = None
        self._size = 0  # bytes in the open part
        self._rows = 0  # rows in the open part
        self._closed = False

    @property
    def parts(self) -> list[Path]:
        """The parts written, in order (after ``close()``, under their final names)."""
        return list(self._parts)

    @property
    def closed(self) -> bool:
        return self._closed

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        """Take ``text`` (any piece of the CSV); returns its length in characters."""
        self.feed(text.encode("utf-8"))
        return len(text)

    def feed(self, data: bytes | memoryview) -> None:
        """Take a piece of the CSV as UTF-8 bytes."""
        if self._closed:
            raise ValueError(f"write to {self.stem}: the splitter is closed")
        view = memoryview(data)
        for start in range(0, len(view), _CHUNK):
            self._scan(view[start : start + _CHUNK])

    def close(self) -> None:
        """Write what is held back and finish the last part; a single part becomes
        ``<stem>.csv``."""
        if self._closed:
            return
        if self._tail:
            self._record(bytes(self._tail))
            self._tail.clear()
        if self._header is not None and not self._parts:
            self._open()  # a header and no rows: it is the table
        self._end_part()
        self._closed = True
        if len(self._parts) == 1:
            whole = self.stem.with_name(f"{self.stem.name}.csv")
            os.replace(self._parts[0], whole)
            self._parts = [whole]

    def abort(self) -> None:
        """Stop and remove every part written."""
        self._end_part()
        self._closed = True
        for p in self._parts:
            p.unlink(missing_ok=True)
        self._parts = []

    def __enter__(self) -> CsvSplitter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def _scan(self, chunk: memoryview) -> None:
        """Find the rows ending in ``chunk`` and pass them on; keep the rest."""
        raw = np.frombuffer(chunk, dtype=np.uint8)
        newlines = np.flatnonzero(raw == _NEWLINE)
        quotes = raw == _QUOTE
        if quotes.any():
            # a newline ends a row when the quotes before it (since the row began) are even
            seen = np.cumsum(quotes, dtype=np.int64)[newlines] + self._odd
            ends = newlines[seen % 2 == 0]
            odd = bool((int(np.count_nonzero(quotes)) + self._odd) % 2)
        else:
            ends = newlines[:0] if self._odd else newlines
            odd = self._odd
        self._odd = odd
        if not ends.size:
            self._tail += chunk
            return
        bounds = ends.astype(np.int64) + 1  # each row ends before one of these offsets
        first = int(bounds[0])
        self._record(bytes(self._tail) + chunk[:first].tobytes())
        self._tail.clear()
        self._rows_in(chunk, bounds)
        self._tail += chunk[int(bounds[-1]) :]

    def _record(self, row: bytes) -> None:
        """One whole row: the header if it is the first."""
        if self._header is None:
            self._header = row
        else:
            self._rows_in(memoryview(row), np.array([0, len(row)], dtype=np.int64))

    def _rows_in(self, data: memoryview, bounds: np.ndarray) -> None:
        """Write the rows ``data[bounds[k]:bounds[k + 1]]``, as many at a time as fit."""
        i, last = 0, len(bounds) - 1
        while i < last:
            if self._file is None:
                self._open()
            assert self._file is not None
            # the furthest row end that keeps this part within max_bytes
            limit = int(bounds[i]) + self.max_bytes - self._size
            j = min(int(np.searchsorted(bounds, limit, side="right")) - 1, last)
            if j <= i:
                if self._rows:
                    self._end_part()
                    continue
                j = i + 1  # too large even alone with the header: a part of its own
            start, stop = int(bounds[i]), int(bounds[j])
            self._file.write(data[start:stop])
            self._size += stop - start
            self._rows += j - i
            i = j

    def _open(self) -> None:
        assert self._header is not None
        path = self.stem.with_name(f"{self.stem.name}_split{len(self._parts)}.csv")
        self._file = path.open("wb")
        self._parts.append(path)
        self._file.write(self._header)
        self._size = len(self._header)
        self._rows = 0

    def _end_part(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def split_csv(path: str | Path, max_bytes: int) -> list[Path]:
    """``path`` cut into parts of at most ``max_bytes`` bytes beside it (see the module
    doc), read a piece at a time. A file that fits already is returned as it is,
    ``[path]``; otherwise ``path`` itself is left in place.

    A file that cannot be cut (a header and one large row) comes back as a single part
    renamed to ``<stem>.csv``, which for a ``.csv`` file is ``path`` again, unchanged.
    """
    path = Path(path)
    if path.stat().st_size <= max_bytes:
        return [path]
    stem = path.with_suffix("") if path.suffix == ".csv" else path
    with CsvSplitter(stem, max_bytes) as out, path.open("rb") as src:
        while chunk := src.read(_CHUNK):
            out.feed(chunk)
    return out.parts
