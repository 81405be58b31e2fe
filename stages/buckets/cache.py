"""Records kept per hour, compactly, and what has been read of each log.

Layout under the cache directory, as MetPX's stats library laid out its hourly pickles
(without pickle: each hour is a compressed numpy archive, ``allow_pickle`` off both ways):

* ``<client>/<YYYYMMDD>/<direction>/<machine>_<HH>.npz``: the records of that hour (UTC):
  ``time`` (epoch ms), ``latency``, ``bytes``, ``error``, ``name``, ``line``;
* ``state.json``: per log file its device and inode, the bytes and lines read, and per
  (client, machine, direction) the time up to which its hours are complete. It is written
  (atomically) only after the hours it speaks for are safely stored, so an update that
  fails part-way is done again, not lost.

An hour file, once its hour is over and its logs read past it, holds every record of the
hour; an hour with no records has an empty file, so "nothing happened" and "not read yet"
differ. ``Hours.update`` adds records to their hours (a record already stored, same file
and line, is not added twice).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import tempfile
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import Columns

#: the columns an hour file holds, and their types (``name``: fixed-width bytes)
COLUMNS = {"time": np.int64, "latency": np.float64, "bytes": np.int64, "error": np.int8,
           "line": np.int64}  # fmt: skip
HOUR_MS = 3_600_000


class CacheError(Exception):
    """The cache cannot be read or written; the message says which file and what to do."""


def empty() -> Columns:
    return Columns({**{n: np.empty(0, t) for n, t in COLUMNS.items()},
                    "name": np.empty(0, "S1")})  # fmt: skip


def hour_of(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms // HOUR_MS * 3600, dt.UTC)


@dataclass(frozen=True)
class Source:
    """One log: whose it is."""

    client: str
    machine: str
    direction: str

    @property
    def key(self) -> str:
        return f"{self.client}/{self.machine}/{self.direction}"


class Hours:
    """The hour files under ``root``."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def path(self, src: Source, hour: dt.datetime) -> Path:
        return (self.root / src.client / f"{hour:%Y%m%d}" / src.direction
                / f"{src.machine}_{hour:%H}.npz")  # fmt: skip

    def load(
        self, src: Source, hour: dt.datetime, columns: Iterable[str] | None = None
    ) -> Columns | None:
        """The records of one hour (only ``columns``, if given: each is a member of its
        own, inflated only when asked for), or None if it was never stored."""
        path = self.path(src, hour)
        try:
            with np.load(path, allow_pickle=False) as z:
                return Columns({n: z[n] for n in (z.files if columns is None else columns)})
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError) as exc:
            msg = f"{path}: not a readable hour of records ({exc}); delete it and update again"
            raise CacheError(msg) from None

    def store(self, src: Source, hour: dt.datetime, records: Columns) -> None:
        """Write one hour's records (atomically: a reader sees the old file or the new)."""
        path = self.path(src, hour)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".npz")
        try:
            with os.fdopen(fd, "wb") as f:
                _write_npz(f, records)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def update(self, src: Source, records: Columns, through: dt.datetime) -> int:
        """Add ``records`` of ``src`` to their hours, and write every hour up to
        ``through`` (exclusive) that has no file yet as empty; returns the hours written."""
        written = 0
        hours = records["time"] // HOUR_MS if len(records) else np.empty(0, np.int64)
        for h in np.unique(hours).tolist():
            hour = dt.datetime.fromtimestamp(h * 3600, dt.UTC)
            new = records.select(hours == h)
            old = self.load(src, hour)
            if old is not None and len(old):
                # a record stored by an update whose state was never saved: not twice
                seen = set(zip(old["time"].tolist(), old["line"].tolist(), strict=True))
                again = zip(new["time"].tolist(), new["line"].tolist(), strict=True)
                new = new.select(np.array([k not in seen for k in again], bool))
                new = concat([old, new])
            self.store(src, hour, _sorted(new))
            written += 1
        return written + self.fill(src, records, through)

    def fill(self, src: Source, records: Columns, through: dt.datetime) -> int:
        """Empty files for the hours before ``through`` since the source's first record
        that have none: back-filled, so a graph knows nothing happened then."""
        if not len(records):
            return 0
        return self.fill_between(src, hour_of(int(records["time"].min())), through)

    def fill_between(self, src: Source, since: dt.datetime, through: dt.datetime) -> int:
        """Empty files for the hours of ``[since, through)`` that have none."""
        n = 0
        hour = since.replace(minute=0, second=0, microsecond=0)
        while hour < through:
            if not self.path(src, hour).exists():
                self.store(src, hour, empty())
                n += 1
            hour += dt.timedelta(hours=1)
        return n

    def window(
        self,
        src: Source,
        start: dt.datetime,
        end: dt.datetime,
        columns: Iterable[str] | None = None,
    ) -> tuple[Columns, list[dt.datetime]]:
        """Every stored record of ``[start, end)`` hours (``columns`` of them), and the
        hours with no file."""
        parts, missing = [], []
        hour = start
        while hour < end:
            got = self.load(src, hour, columns)
            if got is None:
                missing.append(hour)
            elif len(got):
                parts.append(got)
            hour += dt.timedelta(hours=1)
        return concat(parts), missing

    def sources(self) -> Iterator[Source]:
        """Every (client, machine, direction) with hours stored."""
        seen = set()
        for p in sorted(self.root.glob("*/*/*/*_*.npz")):
            src = Source(p.parts[-4], p.stem.rsplit("_", 1)[0], p.parts[-2])
            if src not in seen:
                seen.add(src)
                yield src


def _write_npz(f: Any, records: Columns) -> None:
    """``records`` as a compressed numpy archive (what ``np.load`` reads), deflated at
    level 1: several times faster to write than ``np.savez_compressed``'s level 6, for
    files a little larger."""
    with zipfile.ZipFile(f, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        for name, array in records.items():
            with z.open(f"{name}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.ascontiguousarray(array), allow_pickle=False)


def concat(parts: Iterable[Columns]) -> Columns:
    """Records of several hours (or chunks) as one; names widened to the longest."""
    parts = [p for p in parts if len(p)]
    if not parts:
        return empty()
    if "name" not in parts[0]:
        return Columns({n: np.concatenate([p[n] for p in parts]) for n in parts[0].names})
    width = max(p["name"].dtype.itemsize for p in parts)
    return Columns({n: np.concatenate([p[n].astype(f"S{width}") if n == "name" else p[n]
                                       for p in parts]) for n in parts[0].names})  # fmt: skip


def _sorted(c: Columns) -> Columns:
    return c.select(np.argsort(c["time"], kind="stable")) if len(c) else c


@dataclass
class State:
    """What has been read of each log, and up to when each source's hours are complete."""

    path: Path
    logs: dict[str, dict[str, int]] = field(default_factory=dict)
    updated: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, root: str | os.PathLike[str]) -> State:
        path = Path(root) / "state.json"
        try:
            data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls(path)
        except (OSError, ValueError) as exc:
            msg = (f"{path}: not a readable cache state ({exc}); fix it by hand, or delete it "
                   "to read every log again")  # fmt: skip
            raise CacheError(msg) from None
        return cls(path, dict(data.get("logs", {})), dict(data.get("updated", {})))

    def start_of(self, log: Path) -> tuple[int, int, str | None]:
        """Where to read ``log`` from: (byte offset, lines before it, why it starts over or
        None). A log whose inode changed, or that is now shorter than what was read, was
        rotated or truncated: it is read from its start."""
        st = log.stat()
        kept = self.logs.get(str(log))
        if kept is None:
            return 0, 0, None
        if kept["inode"] != st.st_ino or kept["dev"] != st.st_dev:
            return 0, 0, "it was replaced (rotated): read from its start"
        if st.st_size < kept["offset"]:
            return 0, 0, (f"it is shorter than the {kept['offset']:,} bytes read before "
                          "(truncated): read from its start")  # fmt: skip
        return kept["offset"], kept["lines"], None

    def read_to(self, log: Path, offset: int, lines: int) -> None:
        st = log.stat()
        self.logs[str(log)] = {"dev": st.st_dev, "inode": st.st_ino, "offset": offset,
                               "lines": lines}  # fmt: skip

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        with tmp.open("w", encoding="utf-8") as f:
            json.dump({"logs": self.logs, "updated": self.updated}, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(self.path)
