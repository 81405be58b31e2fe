"""The ``read_logs`` source: transfer logs to columns, a chunk of whole lines at a time.

MetPX logs lie as ``<dir>/<machine>/<tx|rx>_<client>.log``: a sender's (tx) or receiver's
(rx) log of one client on one machine; rotated ones are ``tx_<client>.log.YYYY-MM-DD``, and
any of them may be gzipped (``.gz``, decompressed as a stream, never whole). ``path`` is one
such file or a directory, walked (dot-files and dot-directories skipped) in sorted order;
the files are shared out among the replicas. Per chunk of about ``chunk_mib`` MiB it yields
a ``Columns`` of the lines kept, with ``client``, ``machine`` and ``direction`` (the same
for the whole file), then the chunk's reject records; after each file, a note::

    {"kind": "file", "file", "client", "machine", "direction", "lines", "kept", "skipped",
     "rejected", "complete", "problem"}

A truncated or corrupt gzip file yields every whole line it holds, its partial last line
is rejected, and it is reported as incomplete (the run then exits 3).

``format: metpx`` (``stages.buckets.metpx``) is the compiled parser of MetPX lines; the time
is local to ``tz``. ``format: regex`` reads any other line format with ``pattern``, a Python
regular expression searched in each line, whose named groups become columns:

* ``time`` (required): read with ``time_format`` (``strptime``; default
  ``%Y-%m-%d %H:%M:%S,%f``), local to ``tz`` unless the format has ``%z``; epoch ms, UTC;
* ``latency`` (float64, seconds), ``bytes`` (int64), ``error`` (int8: 1 where the group
  matched text other than ``0``, e.g. ``(?P<error>ERROR)?``), ``name`` (fixed-width bytes);
* ``client``, ``machine``, ``direction`` (str): from the line instead of the file's name;
* any other: int64 if every value of the chunk is a whole number, float64 if every one is
  a number (NaN where the group did not match), else str.

A line that does not match, or whose time or number does not read, is rejected. With
``format: regex`` a directory's files are all read, named as above or not (those that are
not have empty ``client``, ``machine`` and ``direction``); with ``format: metpx`` files that
are not are left out, with a warning.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import numpy as np

from pipeline import Batch, Columns, Context
from stages.buckets.clock import LocalClock
from stages.buckets.metpx import MetpxParser, Parsed
from stages.streams import Lines, Progress, Stream
from stages.wrstat.escape import go_escape

#: the compiled parser, loaded once in the process workers are forked from
WORKER_PRELOAD = ["stages.buckets.metpx:warm"]

DEFAULT_TIME_FORMAT = "%Y-%m-%d %H:%M:%S,%f"
FORMATS = ("metpx", "regex")
MIB = 1 << 20
_LAYOUT = re.compile(r"(tx|rx)_(.+?)\.log(?:\.\d{4}-\d{2}-\d{2})?(?:\.gz)?")
_NAMING = "<machine>/<tx|rx>_<client>.log, optionally .YYYY-MM-DD and .gz"


class LogsError(ValueError):
    """A parameter of ``read_logs`` cannot be used; the message says which and what to do."""


@dataclass(frozen=True)
class LogFile:
    path: Path
    machine: str
    direction: str  # "tx", "rx", or "" if the name does not say
    client: str


def log_file(path: Path) -> LogFile | None:
    """The MetPX log ``path`` names, or None if its name does not follow the layout.

    >>> log_file(Path("logs/pxatx/tx_cmc.log.2026-11-28.gz"))
    LogFile(path=PosixPath('logs/pxatx/tx_cmc.log.2026-11-28.gz'), machine='pxatx', \
direction='tx', client='cmc')
    """
    m = _LAYOUT.fullmatch(path.name)
    return LogFile(path, path.parent.name, m.group(1), m.group(2)) if m else None


def discover(path: str, any_name: bool) -> tuple[list[LogFile], list[Path]]:
    """The log files at ``path`` (a file or a directory, walked), sorted, and the files left
    out because their names do not follow the layout (kept, unnamed, with ``any_name``)."""
    root = Path(path)
    if root.is_file():
        found = log_file(root)
        if found is None and not any_name:
            raise LogsError(f"path: {root} is not named as a MetPX log ({_NAMING}); rename it, "
                            "or read it with format: regex")  # fmt: skip
        return [found or LogFile(root, "", "", "")], []
    if not root.is_dir():
        raise LogsError(f"path: {root} does not exist; give a log file or a directory of them")
    files: list[LogFile] = []
    others: list[Path] = []
    for folder, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in names:
            file = Path(folder, name)
            if name.startswith(".") or not file.is_file():
                continue
            found = log_file(file)
            if found is not None or any_name:
                files.append(found or LogFile(file, "", "", ""))
            else:
                others.append(file)
    return sorted(files, key=lambda f: str(f.path)), sorted(others)


class LineParser(Protocol):
    """Turns chunks of one file's lines, in order, into columns, counts and rejects."""

    def parse(self, data: np.ndarray, file: str, first_line: int) -> Parsed: ...


def read_logs(
    ctx: Context,
    path: str,
    tz: str = "America/Montreal",
    format: str = "metpx",
    pattern: str | None = None,
    time_format: str | None = None,
    chunk_mib: float = 4.0,
) -> Iterator[Any]:
    """Columns of the log lines under ``path`` (see the module docstring). The parameters
    are checked here, before anything is read."""
    zone = _zone(tz)
    if format not in FORMATS:
        raise LogsError(f"format: {format!r} is not one of {', '.join(FORMATS)}")
    if chunk_mib <= 0:
        raise LogsError(f"chunk_mib: {chunk_mib!r} must be more than 0")
    if format == "metpx":
        if pattern is not None or time_format is not None:
            raise LogsError("pattern and time_format are only used with format: regex")

        def parser(log: LogFile) -> LineParser:
            return MetpxParser(zone, log.direction)

    else:
        regex = compile_pattern(pattern)
        fmt = time_format or DEFAULT_TIME_FORMAT

        def parser(log: LogFile) -> LineParser:
            return RegexParser(regex, fmt, zone)

    return _read(ctx, path, format == "regex", parser, max(1, int(chunk_mib * MIB)))


def _zone(tz: str) -> ZoneInfo:
    try:
        return ZoneInfo(tz)
    except (ValueError, TypeError, KeyError):  # ZoneInfoNotFoundError is a KeyError
        msg = f"tz: {tz!r} is not a time zone; give an IANA name such as America/Montreal or UTC"
        raise LogsError(msg) from None


def compile_pattern(pattern: str | None) -> re.Pattern[str]:
    """``pattern`` compiled, with a ``time`` group and no group named ``line``."""
    if not pattern:
        raise LogsError("pattern: format: regex needs a pattern, a regular expression with a "
                        "(?P<time>...) group and any others to keep as columns")  # fmt: skip
    try:
        regex = re.compile(pattern)
    except re.error as exc:
        msg = f"pattern: {pattern!r} is not a valid regular expression: {exc}"
        raise LogsError(msg) from None
    if "time" not in regex.groupindex:
        raise LogsError(f"pattern: {pattern!r} has no (?P<time>...) group; each line's time "
                        "is needed, e.g. ^(?P<time>\\S+ \\S+) ...")  # fmt: skip
    if "line" in regex.groupindex:
        raise LogsError("pattern: a group named 'line' would hide the line numbers; rename it")
    return regex


def _read(
    ctx: Context,
    path: str,
    any_name: bool,
    parser: Callable[[LogFile], LineParser],
    chunk_bytes: int,
) -> Iterator[Any]:
    files, others = discover(path, any_name)
    if others and ctx.replica == 0:
        ctx.warn(f"{len(others):,} file(s) under {path} were not read: their names do not "
                 f"follow {_NAMING} (e.g. {others[0]})")  # fmt: skip
    if not files and ctx.replica == 0:
        ctx.warn(f"no log files under {path}")
    mine = files[ctx.replica :: ctx.replicas]
    progress = Progress(ctx, sum(log.path.stat().st_size for log in mine))
    for log in mine:
        yield from read_file(ctx, log, parser(log), chunk_bytes, progress)
        progress.file_done(log.path.stat().st_size)


def read_file(
    ctx: Context,
    log: LogFile,
    parser: LineParser,
    chunk_bytes: int,
    progress: Progress | None = None,
) -> Iterator[Any]:
    """The columns, rejects and closing note of one log file."""
    name = str(log.path)
    meta = {"client": log.client, "machine": log.machine, "direction": log.direction}
    counts = {"lines": 0, "kept": 0, "skipped": 0, "rejected": 0}

    def chunk(data: bytes, cut: int) -> Iterator[Any]:
        parsed = parser.parse(np.frombuffer(data, dtype=np.uint8, count=cut), name,
                              counts["lines"] + 1)  # fmt: skip
        for key in counts:
            counts[key] += getattr(parsed, key)
        if len(parsed.columns):
            n = len(parsed.columns)
            constant = {k: _repeat(v, n) for k, v in meta.items() if k not in parsed.columns}
            yield parsed.columns.with_columns(**constant)
        if parsed.rejects:
            yield Batch(parsed.rejects)

    lines = Lines(chunk_bytes)
    stream = Stream(log.path, chunk_bytes, progress)
    for piece in stream:
        lines.add(piece)
        while (taken := lines.take()) is not None:
            yield from chunk(*taken)
    if (taken := lines.take(final=True)) is not None:
        yield from chunk(*taken)
    tail = lines.rest()
    if tail and stream.problem is None:  # complete, only the last line has no line end
        yield from chunk(tail + b"\n", len(tail) + 1)
    elif tail:
        counts["lines"] += 1
        counts["rejected"] += 1
        reason = "the file ends in the middle of this line"
        yield {"kind": "reject", "file": name, "line": counts["lines"], "reason": reason,
               "raw": go_escape(tail)}  # fmt: skip
    if stream.problem:
        ctx.input_incomplete(name, f"{stream.problem}; {counts['lines']:,} lines read up to there")
    yield {"kind": "file", "file": name, **meta, **counts, "complete": stream.problem is None,
           "problem": stream.problem}  # fmt: skip


def _repeat(text: str, n: int) -> np.ndarray:
    """``text`` ``n`` times, as a str column (``np.full`` takes 25 times as long)."""
    column = np.empty(n, dtype=object)
    column.fill(text)
    return column


_EPOCH = dt.datetime(1970, 1, 1)
_MS = dt.timedelta(milliseconds=1)
_INT = re.compile(r"[+-]?\d{1,18}")  # fits int64
_FLOAT = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_TEXT_GROUPS = ("client", "machine", "direction")


class RegexParser:
    """Lines of any format, by a regular expression with named groups: the flexible path,
    Python per line."""

    def __init__(self, pattern: re.Pattern[str], time_format: str, zone: ZoneInfo) -> None:
        self.pattern = pattern
        self.time_format = time_format
        self.clock = LocalClock(zone)
        self.groups = [g for g in pattern.groupindex if g != "time"]

    def parse(self, data: np.ndarray, file: str, first_line: int) -> Parsed:
        raws = data.tobytes().split(b"\n")
        if raws and raws[-1] == b"":
            raws.pop()
        rows: list[tuple[int, int, bool, list[str | None]]] = []  # line, ms, local?, groups
        rejects: list[dict[str, Any]] = []
        skipped = 0
        for i, raw in enumerate(raws):
            if not raw:
                skipped += 1
                continue
            row = self._line(raw.decode("utf-8", "surrogateescape"))
            if isinstance(row, str):
                rejects.append({"kind": "reject", "file": file, "line": first_line + i,
                                "reason": row, "raw": go_escape(raw)})  # fmt: skip
            else:
                rows.append((first_line + i, *row))
        columns = self._columns(rows)
        return Parsed(columns, len(raws), len(rows), skipped, len(rejects), rejects)

    def _line(self, text: str) -> tuple[int, bool, list[str | None]] | str:
        """(epoch ms, whether local, the other groups' texts), or why the line is rejected."""
        m = self.pattern.search(text)
        if m is None:
            return f"the line does not match the pattern {self.pattern.pattern!r}"
        stamp = m.group("time") or ""
        try:
            when = dt.datetime.strptime(stamp, self.time_format)
        except ValueError:
            return f"the time {stamp!r} does not match time_format {self.time_format!r}"
        if when.tzinfo is None:
            ms, local = (when - _EPOCH) // _MS, True
        else:
            ms, local = (when - _EPOCH.replace(tzinfo=dt.UTC)) // _MS, False
        values: list[str | None] = [m.group(g) for g in self.groups]
        for group, value in zip(self.groups, values, strict=True):
            problem = _check(group, value)
            if problem:
                return problem
        return ms, local, values

    def _columns(self, rows: list[tuple[int, int, bool, list[str | None]]]) -> Columns:
        n = len(rows)
        times = np.array([r[1] for r in rows], dtype=np.int64)
        local = np.array([r[2] for r in rows], dtype=bool)
        if local.any():  # local times in file order, through the clock
            times[local] = self.clock.to_utc_ms(times[local])
        cols: dict[str, np.ndarray] = {"time": times}
        for k, group in enumerate(self.groups):
            cols[group] = _column(group, [r[3][k] for r in rows], n)
        cols["line"] = np.array([r[0] for r in rows], dtype=np.int64)
        return Columns(cols)


def _check(group: str, value: str | None) -> str | None:
    """Why a group's text cannot be used, or None."""
    if value is None:
        return None
    if group == "latency" and not _FLOAT.fullmatch(value):
        return f"the latency {value!r} is not a number"
    if group == "bytes" and not _INT.fullmatch(value):
        return f"the byte count {value!r} is not a whole number"
    if not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError:
            shown = go_escape(value.encode("utf-8", "surrogateescape"))
            return f"the {group} '{shown}' is not valid UTF-8"
    return None


def _column(group: str, values: list[str | None], n: int) -> np.ndarray:
    """A group's texts as a column of the type its name, or else its values, call for."""
    if group == "latency":
        return np.array([float(v) if v else np.nan for v in values], dtype=np.float64)
    if group == "bytes":
        return np.array([int(v) if v else 0 for v in values], dtype=np.int64)
    if group == "error":
        return np.array([1 if v and v != "0" else 0 for v in values], dtype=np.int8)
    if group == "name":
        encoded = [(v or "").encode() for v in values]
        return np.array(encoded, dtype=f"S{max([1, *map(len, encoded)])}")
    texts = [v or "" for v in values]
    if group not in _TEXT_GROUPS and values:
        if all(v is not None and _INT.fullmatch(v) for v in values):
            return np.array([int(t) for t in texts], dtype=np.int64)
        if all(v is None or _FLOAT.fullmatch(v) for v in values):
            return np.array([float(t) if t else np.nan for t in texts], dtype=np.float64)
    column = np.empty(n, dtype=object)
    column[:] = texts
    return column
