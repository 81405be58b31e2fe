"""Reading input files as a stream: bytes in pieces (decompressed as they come, for gzip),
gathered into chunks of whole lines, with the progress of a source's replica.

Nothing is read whole: memory stays the same whatever a file's size. gzip (several members
too) goes through isal's decompressor where it is installed (``stages.gz``); a stream cut
short or corrupt yields every byte it could, and says how far it got.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from pathlib import Path

from pipeline import Context
from stages.gz import zlib_module as _zlib

#: bytes read from a file at a time
READ = 4 << 20
_GZIP = 31  # wbits: a gzip header and trailer


class Progress:
    """Compressed bytes read, over all the files of this replica."""

    def __init__(self, ctx: Context, total: int) -> None:
        self.ctx = ctx
        self.total = total
        self.before = 0  # files done
        ctx.progress(0, total, "bytes")

    def reading(self, read_in: int) -> None:
        self.ctx.progress(self.before + read_in, self.total, "bytes")

    def file_done(self, size: int) -> None:
        self.before += size
        self.ctx.progress(self.before, self.total, "bytes")


class Stream:
    """The bytes of a file, decompressed if it is gzip (``gzipped``; default: by its
    ``.gz`` name), in pieces of at most ``piece`` bytes. Once they are all out,
    ``problem`` says whether a gzip stream was cut short or corrupt, and after how many
    compressed bytes."""

    def __init__(
        self,
        path: Path,
        piece: int,
        progress: Progress | None,
        gzipped: bool | None = None,
        start: int = 0,
    ) -> None:
        self.path = path
        #: where to start reading a file that is not gzip (a log read before up to there)
        self.start = start
        self.piece = piece
        self.progress = progress
        self.gzipped = path.name.endswith(".gz") if gzipped is None else gzipped
        self.problem: str | None = None

    def __iter__(self) -> Iterator[bytes]:
        d = _zlib.decompressobj(_GZIP)
        read_in = 0
        with self.path.open("rb") as f:
            if self.start and not self.gzipped:
                f.seek(self.start)
            while block := f.read(READ):
                read_in += len(block)
                if self.progress:
                    self.progress.reading(read_in)
                if not self.gzipped:
                    for at in range(0, len(block), self.piece):
                        yield block[at : at + self.piece]
                    continue
                try:
                    while block:  # at most a piece out of each call
                        yield d.decompress(block, self.piece)
                        block = d.unconsumed_tail
                        if d.eof and d.unused_data:  # another gzip member follows
                            block = d.unused_data
                            d = _zlib.decompressobj(_GZIP)
                except (zlib.error, _zlib.error) as exc:
                    self.problem = (
                        f"the gzip data is corrupt after {read_in:,} compressed bytes ({exc})"
                    )
                    return
        if self.gzipped and not d.eof:
            # isal keeps back what it decoded of a stream that stops short, until flushed
            yield d.flush()
            self.problem = (
                f"the gzip stream is truncated: it ends after {read_in:,} compressed bytes"
            )


class Lines:
    """Bytes gathered into chunks that end at a line end; each byte is copied once on its
    way into a chunk."""

    def __init__(self, chunk_bytes: int) -> None:
        self.chunk_bytes = chunk_bytes
        self.parts: list[bytes] = []
        self.size = 0

    def add(self, data: bytes) -> None:
        if data:
            self.parts.append(data)
            self.size += len(data)

    def take(self, final: bool = False) -> tuple[bytes, int] | None:
        """(buffer, length of its whole lines) once a chunk is due (or ``final``)."""
        if not self.parts or (self.size < self.chunk_bytes and not final):
            return None
        data = self.parts[0] if len(self.parts) == 1 else b"".join(self.parts)
        cut = data.rfind(b"\n") + 1
        self.parts = [data[cut:]] if cut < len(data) else []
        self.size = len(data) - cut
        return (data, cut) if cut else None

    def rest(self) -> bytes:
        return b"".join(self.parts)
