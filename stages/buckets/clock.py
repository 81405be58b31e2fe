"""Wall-clock times of a log's zone to UTC, for the lines of one file in their order."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import numpy as np

#: before any time a log holds
_EARLIEST = int(np.iinfo(np.int64).min)


class LocalClock:
    """Wall-clock times of one zone to UTC, for the lines of one file in their order.

    Each distinct local hour is looked up once (``zoneinfo``); an hour in which the offset
    changes (a change at a time other than a whole hour) is looked up second by second.

    * In the gap when clocks go forward (times that never happened), the offset from before
      the change is used (``fold=0``, as ``datetime`` does).
    * In the hour that happens twice when clocks go back, the first pass (``fold=0``) is
      taken, until the times go back by more than ``JITTER_MS``: that line and every later
      one in that hour are of the second pass (``fold=1``). Threads of one program can write
      their lines a little out of order, so a step back of less than a minute is not taken
      as the repeat. A file that starts inside the second pass cannot be told apart from the
      first and is read as the first. What was seen stays with the clock from chunk to
      chunk, so the answer does not depend on where the chunks are cut.
    """

    JITTER_MS = 60_000

    def __init__(self, zone: ZoneInfo) -> None:
        self.zone = zone
        #: local hour -> its offsets (seconds, fold 0 and 1), or None if they change in it
        self._hours: dict[int, tuple[int, int] | None] = {}
        #: local hour that happens twice -> (latest time of its first pass, second pass seen)
        self._twice: dict[int, tuple[int, bool]] = {}

    def _offsets(self, second: int) -> tuple[int, int]:
        local = dt.datetime(1970, 1, 1) + dt.timedelta(seconds=second)
        first = local.replace(tzinfo=self.zone, fold=0).utcoffset()
        second_ = local.replace(tzinfo=self.zone, fold=1).utcoffset()
        assert first is not None and second_ is not None  # a ZoneInfo always has one
        return int(first.total_seconds()), int(second_.total_seconds())

    def _hour(self, hour: int) -> tuple[int, int] | None:
        if hour not in self._hours:
            start = self._offsets(hour * 3600)
            end = self._offsets(hour * 3600 + 3599)
            self._hours[hour] = start if start == end else None
        return self._hours[hour]

    def to_utc_ms(self, local_ms: np.ndarray) -> np.ndarray:
        """UTC epoch milliseconds of local times (epoch milliseconds as if they were UTC),
        given in file order."""
        n = len(local_ms)
        if n == 0:
            return np.empty(0, dtype=np.int64)
        hours = local_ms // 3_600_000
        # lines come in time order, so hours come in runs: look up each run's hour once
        heads = np.concatenate(([0], np.flatnonzero(hours[1:] != hours[:-1]) + 1))
        distinct, which = np.unique(hours[heads], return_inverse=True)
        found = [self._hour(int(h)) for h in distinct.tolist()]
        table = np.array([f if f else (0, 0) for f in found], dtype=np.int64).reshape(-1, 2)
        lengths = np.diff(np.append(heads, n))
        offsets = np.repeat(table[which], lengths, axis=0)
        if any(f is None for f in found):
            mixed = np.array([f is None for f in found])[np.repeat(which, lengths)]
            self._by_second(local_ms, mixed, offsets)
        fold = np.zeros(n, dtype=bool)
        twice = np.flatnonzero(offsets[:, 0] > offsets[:, 1])
        if len(twice):
            self._second_pass(local_ms[twice], hours[twice], fold, twice)
        utc: np.ndarray = local_ms - np.where(fold, offsets[:, 1], offsets[:, 0]) * 1000
        return utc

    def _by_second(self, local_ms: np.ndarray, mixed: np.ndarray, offsets: np.ndarray) -> None:
        rows = np.flatnonzero(mixed)
        seconds, which = np.unique(local_ms[rows] // 1000, return_inverse=True)
        table = np.array([self._offsets(int(s)) for s in seconds.tolist()], dtype=np.int64)
        offsets[rows] = table.reshape(-1, 2)[which]

    def _second_pass(
        self, times: np.ndarray, hours: np.ndarray, fold: np.ndarray, rows: np.ndarray
    ) -> None:
        for hour in np.unique(hours).tolist():
            at = np.flatnonzero(hours == hour)
            t = times[at]
            latest, repeated = self._twice.get(hour, (_EARLIEST, False))
            first = 0  # the first line of the second pass
            if not repeated:
                before = np.maximum.accumulate(np.concatenate(([latest], t[:-1])))
                back = np.flatnonzero(t + self.JITTER_MS < before)
                first = int(back[0]) if len(back) else len(at)
                latest = max(latest, int(t[:first].max())) if first else latest
                repeated = first < len(at)
            self._twice[hour] = (latest, repeated)
            fold[rows[at[first:]]] = True
