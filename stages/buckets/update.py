"""Keeping the hour cache up to date from sender logs, a piece at a time (as MetPX's
``pickleUpdater`` did from cron), and reading what the cache does not hold yet.

``update`` reads every log under a directory from where the last update stopped (its
byte offset; a log that was rotated or truncated from its start), adds the new records to
their hours (``stages.buckets.cache``), writes empty files for the hours of each source
that passed with no record (back-fill), and only then saves the state: an update that
fails part-way is done again by the next one, and nothing is counted twice.

``tail`` gives the records a log has past the last update, without storing them: what a
graph of the last hour needs (``stages.buckets.view``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import Columns
from stages.buckets.cache import THRESHOLD, Hours, Source, State, concat
from stages.buckets.logs import discover
from stages.buckets.metpx import MetpxParser
from stages.outfiles import tsv
from stages.streams import Lines, Stream

CHUNK = 4 << 20


def logs_under(root: Path) -> list[tuple[Path, Source]]:
    """Every plain sender log under ``root`` (or ``root`` itself), oldest rotation first
    (gzipped ones are finished rotations: the cache is filled from the live logs)."""
    found = []
    for f in discover(str(root), any_name=False)[0]:
        if not f.path.name.endswith(".gz"):
            found.append((f.path, Source(f.client, f.machine, f.direction)))
    return sorted(found, key=lambda x: (x[1].key, x[0].stat().st_mtime, str(x[0])))


def read_from(path: Path, offset: int, chunk: int = CHUNK) -> Iterator[tuple[np.ndarray, int]]:
    """Chunks of whole lines of ``path`` from byte ``offset``, each with the offset after
    it. A last line with no line end yet is left for later: it may still be being written."""
    lines = Lines(chunk)
    for piece in Stream(path, chunk, None, gzipped=False, start=offset):
        lines.add(piece)
        while (taken := lines.take()) is not None:
            data, cut = taken
            offset += cut
            yield np.frombuffer(data, dtype=np.uint8, count=cut), offset
    if (taken := lines.take(final=True)) is not None:
        data, cut = taken
        yield np.frombuffer(data, dtype=np.uint8, count=cut), offset + cut


@dataclass
class Updated:
    """What an update did."""

    lines: int = 0
    records: int = 0
    rejected: int = 0
    hours: int = 0
    notes: list[str] = field(default_factory=list)
    rejects: list[dict[str, Any]] = field(default_factory=list)


def _read(log: Path, src: Source, tz: str, offset: int, lines: int,
          done: Updated) -> tuple[Columns, int, int]:  # fmt: skip
    """The records of ``log`` past ``offset``: (records, new offset, lines read in all)."""
    parser = MetpxParser(tz, src.direction)
    parts = []
    for data, end in read_from(log, offset):
        p = parser.parse(data, str(log), lines + 1)
        parts.append(p.columns)
        lines += p.lines
        offset = end
        done.lines += p.lines
        done.rejected += p.rejected
        done.rejects += p.rejects
    records = concat(parts)
    done.records += len(records)
    return records, offset, lines


def update(
    logs: Path,
    cache: Path,
    tz: str,
    now: dt.datetime | None = None,
    threshold: float = THRESHOLD,
) -> Updated:
    """Bring the cache under ``cache`` up to date with the logs under ``logs``; the hours
    written count their minutes' latencies over ``threshold``."""
    now = now or dt.datetime.now(dt.UTC)
    through = now.replace(minute=0, second=0, microsecond=0)  # hours before it are over
    state, hours = State.load(cache), Hours(cache, threshold)
    done = Updated()
    for log, src in logs_under(logs):
        offset, lines, why = state.start_of(log)
        if why:
            done.notes.append(f"{log}: {why}")
        records, offset, lines = _read(log, src, tz, offset, lines, done)
        done.hours += hours.update(src, records, through)
        since = state.updated.get(src.key)
        if since:  # hours of this source that passed with nothing in its logs
            done.hours += hours.fill_between(src, dt.datetime.fromisoformat(since), through)
        state.read_to(log, offset, lines)
        state.updated[src.key] = through.isoformat()
    if done.rejects:
        _keep_rejects(cache, done.rejects)
    state.save()  # last: the hours it speaks for are stored
    return done


def _keep_rejects(cache: Path, rejects: list[dict[str, Any]]) -> None:
    path = cache / "rejects.tsv"
    rows = [(r["file"], r["line"], r["reason"], r["raw"]) for r in rejects]
    text = tsv(("File", "Line", "Reason", "Raw"), rows)
    with path.open("a", encoding="utf-8") as f:
        f.write(text if f.tell() == 0 else text.split("\n", 1)[1])


def tail(logs: Path, cache: Path, tz: str, client: str, direction: str = "tx") -> Columns:
    """The records of ``client``'s logs past the last update (not stored)."""
    state = State.load(cache)
    parts = []
    for log, src in logs_under(logs):
        if src.client != client or src.direction != direction:
            continue
        offset, lines, _ = state.start_of(log)
        records, _, _ = _read(log, src, tz, offset, lines, Updated())
        parts.append(records)
    return concat(parts)
