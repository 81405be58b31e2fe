"""Who and how full: names, PIs, quotas, forecasts and the kept history of a run's usage.

The report stage hands over the bare figures of each snapshot date; ``Enricher`` gives back
what lurge added to them, without blocking the replica's event loop (lookups, commands and
SQLite run in threads; MySQL is asyncio-native):

1. every gid and uid of the run named once (``stages.wrstat.identities``: the system
   databases, a mapping file, or LDAP, falling back to the system with a warning);
2. each (volume, group)'s hard quota (``stages.wrstat.quota``: ``lfs quota``, then a CSV
   file), many commands at a time;
3. per date, oldest first: the last snapshots kept in the history store, a least-squares
   forecast and warning level per (volume, group, base directory)
   (``stages.wrstat.forecast``), then the date's figures recorded in the store
   (``stages.wrstat.stores``; retried, then spooled for the next run when the database is
   away: ``stages.wrstat.spool``).

What could not be done is said with ``ctx.warn`` (the run summary lists it) and never
fails the run: an unknown quota is ``-``, a forecast without history is flat.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import Context
from stages.wrstat.forecast import DEFAULT_POINTS, Thresholds, forecast
from stages.wrstat.history import (
    DirectoryUsage,
    GroupUsage,
    Point,
    Snapshot,
    UserUsage,
)
from stages.wrstat.identities import (
    NO_PI,
    Backend,
    FileIdentities,
    Group,
    Resolver,
    SystemIdentities,
)
from stages.wrstat.quota import LFS_QUOTA, CsvQuota, LfsQuota, Quotas, Source
from stages.wrstat.spool import DATABASE_ERRORS, Spool, keep, replay
from stages.wrstat.stores import OFF, describe, open_store

log = logging.getLogger("stages.wrstat")

#: quota commands run at once (``lfs quota`` waits on the file system, not on the CPU)
QUOTA_THREADS = 16


@dataclass(frozen=True)
class GroupFigures:
    """One row of the group report before it is enriched."""

    volume: str
    mount: str
    gid: int
    base_directory: str
    used: int
    files: int
    last_modified_days: float


@dataclass(frozen=True)
class UserFigures:
    volume: str
    uid: int
    gid: int
    used: int
    files: int
    last_modified_days: float


@dataclass(frozen=True)
class DirectoryFigures:
    volume: str
    base_directory: str
    path: str
    gid: int
    used: int
    files: int
    last_modified_days: float
    filetypes: Mapping[str, int]


@dataclass(frozen=True)
class AgeFigures:
    """A group's age profile on a volume: usage and files per wrstat age class, by mtime
    and by atime (``stages.wrstat.layout.AGE_CLASSES`` order)."""

    volume: str
    gid: int
    usage_by_mtime: tuple[int, ...]
    usage_by_atime: tuple[int, ...]
    files_by_mtime: tuple[int, ...]
    files_by_atime: tuple[int, ...]


@dataclass
class DateFigures:
    """Everything one snapshot date's reports hold, before names and forecasts."""

    date: dt.date
    groups: list[GroupFigures] = field(default_factory=list)
    users: list[UserFigures] = field(default_factory=list)
    directories: list[DirectoryFigures] = field(default_factory=list)
    ages: list[AgeFigures] = field(default_factory=list)


@dataclass
class Standing:
    """What the enricher adds to a date's group rows, index for index."""

    quota: list[int | None]
    #: warning level (1 OK ...) or None when the quota is unknown
    level: list[int | None]
    warning: list[str | None]
    days_to_full: list[float | None]
    #: bytes a day, from the forecast's fit
    slope: list[float]


@dataclass
class Enriched:
    """The run's names, and each date's standing."""

    groups: dict[int, Group]
    users: dict[int, str]
    dates: dict[dt.date, Standing]
    thresholds: Thresholds
    #: (volume, group, why) of every quota no source knew
    unknown_quotas: list[tuple[str, str, str]] = field(default_factory=list)


def identity_backend(identities: str, ldap: Mapping[str, Any] | None) -> Backend:
    """The backend the ``identities`` parameter names: ``system``, ``ldap`` (with the
    ``ldap`` parameters; server and credentials from the environment), or the path of a
    mapping file. Raised errors say what is wrong with the configuration."""
    if identities in ("", "system"):
        return SystemIdentities()
    if identities == "ldap":
        options = dict(ldap or {})
        missing = [k for k in ("group_base", "user_base") if not options.get(k)]
        if missing:
            msg = (
                f"identities: ldap needs {' and '.join(missing)} under the stage's 'ldap' "
                "parameters, e.g. ldap: {group_base: 'ou=group,dc=example,dc=org', "
                "user_base: 'ou=people,dc=example,dc=org'}"
            )
            raise ValueError(msg)
        group_base, user_base = options.pop("group_base"), options.pop("user_base")
        from stages.wrstat.ldap import LdapConfig, LdapIdentities  # noqa: PLC0415 - if used

        return LdapIdentities(LdapConfig.from_env(group_base, user_base, **options))
    return FileIdentities(identities)


def quota_sources(command: str | None, file: str | None) -> list[Source]:
    """``lfs quota`` (or ``command``; empty: none), then the CSV ``file`` if given."""
    sources: list[Source] = []
    if command:
        sources.append(LfsQuota(command))
    if file:
        sources.append(CsvQuota(file))
    return sources


class Enricher:
    """See the module docstring. Built at the stage's start, so a bad configuration (an
    unreadable mapping or quota file, an LDAP setup without its URL, a malformed history
    URL) fails the run before any input is read."""

    def __init__(
        self,
        report_dir: Path,
        history: str | bool | None = None,
        identities: str | None = None,
        ldap: Mapping[str, Any] | None = None,
        quota_command: str | None = LFS_QUOTA,
        quota_file: str | None = None,
        warnings: Mapping[str, Any] | None = None,
        forecast_points: int = DEFAULT_POINTS,
        retry: Mapping[str, float] | None = None,
    ) -> None:
        # (YAML reads a bare ``off`` or ``no`` as false)
        history = "off" if history is False else str(history or "")
        identities = str(identities or "system")
        self.resolver = Resolver(identity_backend(identities, ldap))
        self.quotas = Quotas(quota_sources(quota_command, quota_file))
        self.thresholds = Thresholds.from_config(warnings) if warnings else Thresholds.lurge()
        if forecast_points < 1:
            raise ValueError(f"forecast_points must be 1 or more, got {forecast_points}")
        self.points = forecast_points
        self.store = None if history.lower() in OFF else open_store(history, report_dir)
        self.spool = Spool(report_dir / "history-spool.jsonl")
        retry = dict(retry or {})
        self.attempts = int(retry.pop("attempts", 5))
        self.backoff = float(retry.pop("backoff", 1.0))
        if retry:
            raise ValueError(f"retry takes attempts and backoff, not {', '.join(retry)}")
        #: the store answered at the start (a store that did not is tried again at the end)
        self.reachable = False

    async def start(self, ctx: Context) -> None:
        """Open the history store and record what an earlier run had to spool; a store
        that cannot be reached is said at once (the run goes on)."""
        await self._open(ctx, "cannot be used now", f"; the reports will be written, and "
                         f"their figures kept in {self.spool.path} for the next run unless it "
                         "comes back")  # fmt: skip

    async def close(self) -> None:
        if self.store is not None:
            await self.store.close()
        close = getattr(self.resolver.backend, "close", None)
        if close is not None:
            await asyncio.to_thread(close)

    async def enrich(self, dates: Sequence[DateFigures], ctx: Context) -> Enriched:
        gids = {g.gid for d in dates for g in d.groups} | {u.gid for d in dates for u in d.users}
        gids |= {x.gid for d in dates for x in d.directories}
        uids = {u.uid for d in dates for u in d.users}
        groups, users = await asyncio.to_thread(self.resolver.lookup, gids, uids)
        for warning in self.resolver.warnings:
            ctx.warn(warning)
        await self._quotas(dates, groups)
        history_ok = await self._reconnect(ctx)
        standings: dict[dt.date, Standing] = {}
        unread: list[str] = []  # dates forecast without their history, and why
        for d in sorted(dates, key=lambda d: d.date):
            past = await self._recent(d.date, unread) if history_ok else []
            standing = self._standing(d, groups, past)
            standings[d.date] = standing
            if self.store is not None:
                snap = snapshot(d, standing, groups, users)
                if history_ok:
                    kept = await keep(self.store, snap, self.spool, self.attempts, self.backoff)
                    history_ok = kept is not None
                    if kept is not None:
                        ctx.log.info("history (%s): %s kept, %d new group rows, %d new user rows",
                                     describe(self.store), d.date, kept.usage_rows,
                                     kept.user_rows)  # fmt: skip
                else:
                    await asyncio.to_thread(self.spool.add, snap)
        if self.store is not None and not history_ok:
            ctx.warn(
                f"the history store ({describe(self.store)}) could not be written: this run's "
                f"figures wait in {self.spool.path}, and the next run records them first; "
                "forecasts used what history could be read"
            )
        elif unread:
            ctx.warn(f"the history could not be read for the forecasts of {'; '.join(unread)}; "
                     "they are flat: from their own snapshot alone")  # fmt: skip
        unknown = sorted(self.quotas.unknown) if self.quotas.sources else []
        return Enriched(groups, users, standings, self.thresholds, unknown)

    async def _reconnect(self, ctx: Context) -> bool:
        """Whether the store can be used now (a store down at the start is tried again)."""
        if self.store is None or self.reachable:
            return self.store is not None
        return await self._open(ctx, "still cannot be used")

    async def _open(self, ctx: Context, failed: str, then: str = "") -> bool:
        """Connect and record what an earlier run spooled; a failure is logged as the store
        ``failed``, why, and ``then``."""
        if self.store is None:
            return False
        try:
            await self.store.connect()
            await replay(self.store, self.spool)
        except DATABASE_ERRORS as exc:
            ctx.log.error(
                "the history store (%s) %s: %s%s", describe(self.store), failed, exc, then
            )
            return False
        self.reachable = True
        return True

    async def _recent(self, day: dt.date, unread: list[str]) -> list[Point]:
        """The snapshots before ``day`` a forecast is fitted to; a connection that went
        away during the run (a server's idle timeout) is opened again once. A date whose
        history cannot be read goes on ``unread``, with why."""
        assert self.store is not None
        for attempt in (1, 2):
            try:
                return await self.store.recent(day, self.points - 1)
            except DATABASE_ERRORS as exc:
                if attempt == 2:
                    unread.append(f"{day} ({exc})")
                    return []
                with contextlib.suppress(*DATABASE_ERRORS):
                    await self.store.close()
                    await self.store.connect()
        raise AssertionError  # unreachable: the second attempt returns

    async def _quotas(self, dates: Sequence[DateFigures], groups: dict[int, Group]) -> None:
        wanted = sorted({(g.volume, g.mount, g.gid) for d in dates for g in d.groups})
        if not wanted or not self.quotas.sources:
            return
        loop = asyncio.get_running_loop()
        with ThreadPoolExecutor(QUOTA_THREADS, thread_name_prefix="quota") as pool:
            await asyncio.gather(*(
                loop.run_in_executor(pool, self.quotas.limit, vol, mount, groups[gid].name, gid)
                for vol, mount, gid in wanted
            ))  # fmt: skip

    def _standing(
        self,
        d: DateFigures,
        groups: dict[int, Group],
        past: Sequence[Point],
    ) -> Standing:
        """Quotas, forecasts and warning levels of one date's group rows."""
        index = {(g.volume, g.base_directory, g.gid): i for i, g in enumerate(d.groups)}
        which, day, used = [], [], []
        for volume, base, gid, snap, u in past:
            i = index.get((volume, base, gid))
            if i is not None:
                which.append(i)
                day.append((dt.date.fromisoformat(str(snap)) - d.date).days)
                used.append(u)
        current = [g.used for g in d.groups]
        which += range(len(d.groups))
        day += [0] * len(d.groups)
        used += current
        quota: list[int | None] = [None] * len(d.groups)
        if self.quotas.sources:
            quota = [self.quotas.limit(g.volume, g.mount, groups[g.gid].name, g.gid)
                     for g in d.groups]  # fmt: skip
        f = forecast(
            np.array(which, dtype=np.intp),
            np.array(day, dtype=np.float64),
            np.array(used, dtype=np.float64),
            np.array(current, dtype=np.float64),
            np.array([q or 0 for q in quota], dtype=np.float64),
            self.thresholds,
            self.points,
        )
        level: list[int | None] = [
            None if q is None else int(lv) for lv, q in zip(f.level.tolist(), quota, strict=True)
        ]
        return Standing(
            quota=quota,
            level=level,
            warning=[None if lv is None else self.thresholds.name(lv) for lv in level],
            days_to_full=[None if np.isnan(x) else round(x, 1) for x in f.days_to_full.tolist()],
            slope=f.slope.tolist(),
        )

    async def series(self, gid: int, volume: str, base: str) -> list[tuple[dt.date, int]]:
        """The kept ``(snapshot, used)`` of one group row, oldest first (for its picture)."""
        if self.store is None or not self.reachable:
            return []
        try:
            rows = await self.store.group_history(gid, volume)
        except DATABASE_ERRORS:
            return []
        return [(dt.date.fromisoformat(str(r["snapshot"])), int(r["used"])) for r in rows
                if r["base_directory"] == base]  # fmt: skip


def known(pi: str) -> str | None:
    """A PI's name, or None for the unknown PI."""
    return None if pi == NO_PI else pi


def snapshot(
    d: DateFigures, s: Standing, groups: dict[int, Group], users: dict[int, str]
) -> Snapshot:
    """One date's figures as the history store keeps them."""
    return Snapshot(
        d.date,
        [GroupUsage(g.volume, g.gid, groups[g.gid].name, known(groups[g.gid].pi), g.base_directory,
                    g.used, q, g.files, g.last_modified_days, lv)
         for g, q, lv in zip(d.groups, s.quota, s.level, strict=True)],
        [UserUsage(u.volume, u.uid, users[u.uid], u.gid, groups[u.gid].name, u.used, u.files,
                   u.last_modified_days) for u in d.users],
        [DirectoryUsage(x.volume, x.base_directory, x.path, x.gid, groups[x.gid].name, x.used,
                        x.files, x.last_modified_days, dict(x.filetypes))
         for x in d.directories],
    )  # fmt: skip
