"""Records kept per hour, compactly, and what has been read of each log.

Layout under the cache directory, as MetPX's stats library laid out its hourly pickles
(without pickle: each hour is a compressed numpy archive, ``allow_pickle`` off both ways):

* ``<client>/<YYYYMMDD>/<direction>/<machine>_<HH>.npz``: the records of that hour (UTC):
  ``time`` (epoch ms), ``latency``, ``bytes``, ``error``, ``name``, ``line``; and beside
  them the hour's 60 minutes counted (``stages.buckets.stats.bucket_table``), what a graph
  reads instead of the records: ``minutes`` (one float64 row a minute), ``minutes_columns``
  (their names) and ``minutes_threshold`` (one value: the latency they counted as over);
* ``state.json``: per log file its device and inode, its first bytes, the bytes and lines
  read, and per (client, machine, direction) the time up to which its hours are complete.
  It is written (atomically) only after the hours it speaks for are safely stored, so an
  update that fails part-way is done again, not lost. A log renamed by a rotation is the
  same file (device and inode) under a new name: it is read on from where it was left.

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
from stages.buckets.stats import Spec, bucket_table, table_columns

#: the columns an hour file holds, and their types (``name``: fixed-width bytes)
COLUMNS = {"time": np.int64, "latency": np.float64, "bytes": np.int64, "error": np.int8,
           "line": np.int64}  # fmt: skip
HOUR_MS = 3_600_000
#: the fields of a minute table, and MetPX's latency threshold (seconds) for ``over``
MINUTE_FIELDS = ("latency", "bytes", "error")
THRESHOLD = 15.0
#: the members of an hour file that hold its minute table, not its records
MINUTE_MEMBERS = ("minutes", "minutes_columns", "minutes_threshold")
#: the bytes of a log's start kept to tell it from another file that got its inode
HEAD = 64


class CacheError(Exception):
    """The cache cannot be read or written; the message says which file and what to do."""


def empty() -> Columns:
    return Columns({**{n: np.empty(0, t) for n, t in COLUMNS.items()},
                    "name": np.empty(0, "S1")})  # fmt: skip


def hour_of(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms // HOUR_MS * 3600, dt.UTC)


def minute_table(records: Columns, start: int, end: int, threshold: float) -> Columns:
    """The minutes of ``[start, end)`` (epoch seconds, whole minutes) of records with ms
    times, counted as an hour file keeps them (``stages.buckets.stats.bucket_table``)."""
    spec = Spec((), "time", MINUTE_FIELDS, {"latency": threshold}, None, "ms")
    return bucket_table(records, spec, start, end, 60)


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
    """The hour files under ``root``; their minutes count latencies over ``threshold``."""

    def __init__(self, root: str | os.PathLike[str], threshold: float = THRESHOLD) -> None:
        self.root = Path(root)
        self.threshold = float(threshold)

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
                if columns is None:
                    columns = [n for n in z.files if n not in MINUTE_MEMBERS]
                return Columns({n: z[n] for n in columns})
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError) as exc:
            raise _unreadable(path, exc) from None

    def minutes(self, src: Source, hour: dt.datetime) -> Columns | None:
        """The 60 minutes of one hour counted with this cache's threshold (a
        ``minute_table``), or None if the hour was never stored. Read as stored when they
        were counted so; counted from the hour's records when the file has none (written
        before minutes were kept) or another threshold."""
        path = self.path(src, hour)
        names = table_columns(MINUTE_FIELDS)
        start = int(hour.timestamp())
        try:
            with np.load(path, allow_pickle=False) as z:
                if "minutes" in z.files and (
                    z["minutes_threshold"].tolist() == [self.threshold]
                    and z["minutes_columns"].tolist() == names
                ):
                    rows = z["minutes"]
                    if rows.shape != (60, len(names)):
                        raise ValueError(f"minutes of shape {rows.shape}, not (60, {len(names)})")
                    return Columns({n: rows[:, j] for j, n in enumerate(names)})
                records = Columns({n: z[n] for n in ("time", *MINUTE_FIELDS)})
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError) as exc:
            raise _unreadable(path, exc) from None
        return minute_table(records, start, start + 3600, self.threshold)

    def store(self, src: Source, hour: dt.datetime, records: Columns) -> None:
        """Write one hour's records and its minutes (atomically: a reader sees the old file
        or the new)."""
        path = self.path(src, hour)
        path.parent.mkdir(parents=True, exist_ok=True)
        start = int(hour.timestamp())
        table = minute_table(records, start, start + 3600, self.threshold)
        members = {
            **records.to_dict(),
            "minutes": np.column_stack([table[n] for n in table.names]),
            "minutes_columns": np.array(table.names),
            "minutes_threshold": np.array([self.threshold]),
        }
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".npz")
        try:
            with os.fdopen(fd, "wb") as f:
                _write_npz(f, members)
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


def _unreadable(path: Path, exc: Exception) -> CacheError:
    return CacheError(f"{path}: not a readable hour of records ({exc}); delete it and update "
                      "again")  # fmt: skip


def _write_npz(f: Any, members: dict[str, np.ndarray]) -> None:
    """``members`` as a compressed numpy archive (what ``np.load`` reads), deflated at
    level 1: several times faster to write than ``np.savez_compressed``'s level 6, for
    files a little larger."""
    with zipfile.ZipFile(f, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        for name, array in members.items():
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
    logs: dict[str, dict[str, Any]] = field(default_factory=dict)
    updated: dict[str, str] = field(default_factory=dict)
    #: the logs as they were before this update: a log renamed since is found among them
    #: even when its old name was read again (a new file) first
    _before: dict[str, dict[str, Any]] = field(init=False, repr=False)
    #: logs found under the name they had (new name -> old), to be moved when read
    _renamed: dict[str, str] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        self._before = {k: dict(v) for k, v in self.logs.items()}

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
        None). A log read before under another name (renamed by a rotation: the same device
        and inode, the same first bytes) is read on from where it was left. A log whose inode
        changed, or that is now shorter than what was read, was rotated or truncated: it is
        read from its start."""
        st = log.stat()
        head = _head(log)
        kept = self.logs.get(str(log))
        why = None
        if kept is not None and not _same_file(kept, st, head):
            kept, why = None, "it was replaced (rotated): read from its start"
        if kept is None:
            for name, entry in (*self.logs.items(), *self._before.items()):
                if name != str(log) and _same_file(entry, st, head):
                    kept, why = entry, None
                    self._renamed[str(log)] = name
                    break
        if kept is None:
            return 0, 0, why
        if st.st_size < kept["offset"]:
            return 0, 0, (f"it is shorter than the {kept['offset']:,} bytes read before "
                          "(truncated): read from its start")  # fmt: skip
        return kept["offset"], kept["lines"], None

    def read_to(self, log: Path, offset: int, lines: int) -> None:
        st = log.stat()
        entry = {"dev": st.st_dev, "inode": st.st_ino, "offset": offset, "lines": lines,
                 "head": _head(log).hex()}  # fmt: skip
        self.logs[str(log)] = entry
        old = self._renamed.pop(str(log), None)
        # the entry moves to the new name, unless the old name was read since (a new file)
        if old is not None and old in self.logs and _same_file(self.logs[old], st, None):
            del self.logs[old]

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        with tmp.open("w", encoding="utf-8") as f:
            json.dump({"logs": self.logs, "updated": self.updated}, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(self.path)


def _head(log: Path) -> bytes:
    with log.open("rb") as f:
        return f.read(HEAD)


def _same_file(entry: dict[str, Any], st: os.stat_result, head: bytes | None) -> bool:
    """Whether ``entry`` is of the file of ``st`` (and ``head``, its first bytes, when
    given): the first bytes tell a file apart from a later one that got a freed inode (the
    entries of deleted rotations stay). Entries written before first bytes were kept match
    on device and inode alone."""
    if entry["inode"] != st.st_ino or entry["dev"] != st.st_dev:
        return False
    if head is None:
        return True
    kept = bytes.fromhex(entry.get("head", ""))
    n = min(len(kept), len(head))  # either may have been shorter than HEAD, or truncated since
    return head[:n] == kept[:n]
