"""What a graph reads: a client's minutes over a window, from the hour cache's minute
tables and, when asked, the logs past the last update.

A graph of a day reads 24 small tables per machine instead of two million records; the
one record it names (the largest latency) is looked up in its hour only. The MetPX parser
(and its compiled code) is loaded only when the logs are read.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline import Columns
from stages.buckets.cache import THRESHOLD, Hours, empty, minute_table


@dataclass
class View:
    """A client's minute tables (``stages.buckets.cache.minute_table``), the hours nothing
    covers, and the name of the record of a time (ms) and latency (None: not found)."""

    tables: list[Columns]
    missing: list[dt.datetime]
    name: Callable[[int, float], bytes | None]


def minutes_of(
    cache: Path,
    client: str,
    start: int,
    end: int,
    logs: Path | None,
    tz: str,
    threshold: float = THRESHOLD,
) -> View:
    """The minute tables of ``client``'s tx logs for ``[start, end)`` (epoch seconds, whole
    minutes): its cached hours on every machine and, with ``logs``, what its logs hold past
    the last update (read in ``tz``); latencies over ``threshold`` counted."""
    hours = Hours(cache, threshold)
    first = dt.datetime.fromtimestamp(start // 3600 * 3600, dt.UTC)
    last = dt.datetime.fromtimestamp(end, dt.UTC)
    mine = [s for s in hours.sources() if s.client == client and s.direction == "tx"]
    tables: list[Columns] = []
    gaps: set[dt.datetime] | None = None
    for src in mine:
        missing = set()
        hour = first
        while hour < last:
            table = hours.minutes(src, hour)
            if table is None:
                missing.add(hour)
            elif table["records"].any():
                tables.append(table)
            hour += dt.timedelta(hours=1)
        gaps = missing if gaps is None else gaps & missing
    fresh = empty()
    if logs is not None:
        from stages.buckets.update import tail  # noqa: PLC0415 - the parser, only for logs

        fresh = tail(logs, cache, tz, client)
    if len(fresh):
        tables.append(minute_table(fresh, start, end, threshold))
        since = dt.datetime.fromtimestamp(int(fresh["time"].min()) // 3_600_000 * 3600, dt.UTC)
        gaps = {h for h in (gaps or set()) if h < since}

    def name(time_ms: int, latency: float) -> bytes | None:
        hour = dt.datetime.fromtimestamp(time_ms // 3_600_000 * 3600, dt.UTC)
        candidates = [fresh] + [hours.load(s, hour, ("time", "latency", "name")) for s in mine]
        for c in candidates:
            if c is not None and len(c):
                hit = np.flatnonzero((c["time"] == time_ms) & (c["latency"] == latency))
                if len(hit):
                    return bytes(c["name"][hit[0]])
        return None

    return View(tables, sorted(gaps or []), name)
