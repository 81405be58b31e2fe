"""The ``Buckets`` stage: time-bucketed statistics of any records (``stages.buckets.stats``).

Give it the group-by ``keys``, the ``time`` column, the value ``fields``, a bucket
``width`` (seconds, or ``30s``, ``1m``, ``1h``, ``1d``), thresholds and a label column.
It keeps the records it is sent (``Columns``; anything else goes straight on) and, at the
end of the stream, sends on one ``Columns`` of statistics per key: every bucket of the
window, empty ones included. The window is ``window: {start, end}`` (ISO dates or times,
UTC, or epoch seconds), or ``window: {hours: N}`` back from the end of the data, or else
the whole span of the data, cut at bucket edges.

Replicate it keyed by the group-by keys (``route: {key: client}``): each replica then
holds its keys' records whole and its statistics are the exact ones. Records from
unkeyed replicas can be put together in one downstream ``Buckets``: the statistics are
computed from the records, so they combine exactly too.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from pipeline import Columns, Context
from stages.buckets.stats import Spec, bucket_stats

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class BucketError(ValueError):
    """A parameter of the bucket stage is not usable; the message says which and why."""


def seconds(width: int | float | str) -> int:
    """A bucket width: seconds, or a number and a unit (``90s``, ``1m``, ``6h``, ``1d``).

    >>> seconds("1m"), seconds(3600), seconds("2d")
    (60, 3600, 172800)
    """
    if isinstance(width, int | float) and not isinstance(width, bool):
        value = int(width)
    else:
        m = re.fullmatch(r"\s*(\d+)\s*([smhd]?)\s*", str(width))
        if not m:
            raise BucketError(f"width: {width!r} is not a duration; write e.g. 60, 1m, 1h or 1d")
        value = int(m.group(1)) * _UNITS[m.group(2) or "s"]
    if value <= 0:
        raise BucketError(f"width: {width!r} must be more than 0 seconds")
    return value


def instant(value: Any, name: str) -> int:
    """Epoch seconds of ``value``: a number, or an ISO date or time (UTC unless it says)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        value = dt.datetime(value.year, value.month, value.day)
    try:
        when = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))
    except ValueError:
        msg = f"window {name}: {value!r} is not a time; write e.g. 2026-11-29 or 2026-11-29T06:00"
        raise BucketError(msg) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return int(when.timestamp())


class Buckets:
    """Time-bucketed statistics (see the module docstring)."""

    def __init__(
        self,
        keys: Sequence[str],
        time: str,
        fields: Sequence[str],
        width: int | str = 60,
        thresholds: Mapping[str, float] | None = None,
        label: str | None = None,
        unit: str = "s",
        window: Mapping[str, Any] | None = None,
    ) -> None:
        if unit not in ("s", "ms"):
            raise BucketError(f"unit: {unit!r} must be s or ms (of the time column)")
        unknown = set(thresholds or {}) - set(fields)
        if unknown:
            raise BucketError(
                f"thresholds: {sorted(unknown)} are not among the fields {list(fields)}"
            )
        self.spec = Spec(tuple(keys), time, tuple(fields), dict(thresholds or {}), label, unit)
        self.width = seconds(width)
        self.window = dict(window or {})
        extra = set(self.window) - {"start", "end", "hours"}
        if extra:
            raise BucketError(f"window: unknown setting(s) {sorted(extra)}; use start, end, hours")
        self.parts: list[Columns] = []

    def process(self, item: Any, ctx: Context) -> Any:
        if isinstance(item, Columns):
            self._check(item)
            self.parts.append(item)
            return None
        return item

    def _check(self, c: Columns) -> None:
        needed = [*self.spec.keys, self.spec.time, *self.spec.fields]
        if self.spec.label:
            needed.append(self.spec.label)
        missing = [n for n in needed if n not in c]
        if missing:
            msg = (f"records have no column(s) {missing} (they have {list(c.names)}); check "
                   "keys, time, fields and label")  # fmt: skip
            raise BucketError(msg)

    def bounds(self, times: np.ndarray) -> tuple[int, int]:
        """The window: as given, or the data's span, at bucket edges."""
        w, scale = self.width, self.spec.scale
        first = int(times.min()) // scale if len(times) else 0
        last = int(times.max()) // scale if len(times) else 0
        end = instant(self.window["end"], "end") if "end" in self.window else (last // w + 1) * w
        if "start" in self.window:
            start = instant(self.window["start"], "start")
        elif "hours" in self.window:
            start = end - int(float(self.window["hours"]) * 3600)
        else:
            start = first // w * w
        if end <= start:
            raise BucketError(f"window: the end ({end}) is not after the start ({start})")
        return start, end

    def finish(self, ctx: Context) -> list[Any]:
        names = self.parts[0].names if self.parts else ()
        records = Columns({n: np.concatenate([p[n] for p in self.parts]) for n in names})
        self.parts = []
        if not len(records):
            return []
        start, end = self.bounds(records[self.spec.time])
        stats = bucket_stats(records, self.spec, start, end, self.width)
        nb = -(-(end - start) // self.width)
        inside = int(stats["records"].sum())
        ctx.log.info("%s records in %s bucket(s) of %d s for %d key(s), %s to %s; %s outside",
                     f"{len(records):,}", f"{len(stats):,}", self.width, len(stats) // nb,
                     _iso(start), _iso(end), f"{len(records) - inside:,}")  # fmt: skip
        note = {"kind": "bucketed", "records": len(records), "outside": len(records) - inside,
                "start": start, "end": end, "width": self.width}  # fmt: skip
        return [note, *(stats.select(np.arange(k, k + nb)) for k in range(0, len(stats), nb))]


def _iso(t: int) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%d %H:%M")
