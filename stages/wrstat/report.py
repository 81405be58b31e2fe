"""The ``report`` stage: add up the usage tallies and write the reports of each snapshot date.

In ``dir`` (created if missing), for each date of input (not of the run), written atomically:

* ``group-<YYYYMMDD>.tsv``: Volume, Top Level Path, PI, Group, GID, Usage (bytes),
  Quota (bytes), Last Modified (days), Files, Warning, Days Until Full; sorted by volume,
  path, gid;
* ``user-<YYYYMMDD>.tsv``: Volume, User, UID, Group, GID, Usage (bytes), Files,
  Last Modified (days); sorted by volume, uid, gid;
* ``directory-<YYYYMMDD>.tsv``: Volume, Top Level Path, Directory, Group, GID,
  Usage (bytes), Files, Last Modified (days), then the usage of each file type;
* the same as JSON lines (``group-<YYYYMMDD>.jsonl``, ...);
* ``ages-<YYYYMMDD>.tsv``: Volume, Group, GID, By (mtime or atime), then the usage and
  the files of each wrstat age class (under 1 month, 1-2 months, 2-6 months, 6-12 months,
  1-2 years, 2-3 years, 3-5 years, 5-7 years, over 7 years before the snapshot): each
  group's data by how long ago it was last modified, and last read; usage as in the other
  reports (``size // nlink``, every entry), files counting regular files;
* ``rejects-<YYYYMMDD>.tsv``: File, Line, Reason, Raw, for every line that was not used;

and, for the newest date, ``quota-unknown-<YYYYMMDD>.tsv`` (Volume, Group, Reason) when some
quotas could not be found, ``usage-*.png`` pictures of the groups closest to full, and
``ages-<volume>-<YYYYMMDD>.png``: each volume's usage by age class.

Paths are written with Go-style escapes. Names, PIs, quotas, forecasts and the history come
from ``stages.wrstat.enrich``; dates are handled oldest first, each recorded in the history
before the next is forecast. Before writing, every input line is checked to be in exactly
one place: the reports, or the rejects.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import Columns, Context
from stages.outfiles import jsonl, tsv, write_atomically
from stages.wrstat import age_plots, plots
from stages.wrstat.enrich import (
    AgeFigures,
    DateFigures,
    DirectoryFigures,
    Enriched,
    Enricher,
    GroupFigures,
    UserFigures,
    known,
)
from stages.wrstat.escape import go_escape
from stages.wrstat.forecast import DEFAULT_POINTS
from stages.wrstat.layout import AGE_CLASSES, AGE_WIDTH, FILE_TYPES, INT64_MIN, N_AGES
from stages.wrstat.quota import LFS_QUOTA

GROUP_COLUMNS = ("Volume", "Top Level Path", "PI", "Group", "GID", "Usage (bytes)",
                 "Quota (bytes)", "Last Modified (days)", "Files", "Warning",
                 "Days Until Full")  # fmt: skip
USER_COLUMNS = ("Volume", "User", "UID", "Group", "GID", "Usage (bytes)", "Files",
                "Last Modified (days)")  # fmt: skip
DIRECTORY_COLUMNS = ("Volume", "Top Level Path", "Directory", "Group", "GID",
                     "Usage (bytes)", "Files", "Last Modified (days)", *FILE_TYPES)  # fmt: skip
AGE_COLUMNS = ("Volume", "Group", "GID", "By", *(f"Usage {a}" for a in AGE_CLASSES),
               *(f"Files {a}" for a in AGE_CLASSES))  # fmt: skip
REJECT_COLUMNS = ("File", "Line", "Reason", "Raw")

_DAY = 86400


def snapshot_day(note: dict[str, Any]) -> dt.date:
    """The (UTC) date of the snapshot a file note describes."""
    return dt.datetime.fromtimestamp(note["snapshot"], dt.UTC).date()


def days_since(snapshot: int, newest: int) -> float:
    """Last Modified (days): how long before the snapshot the newest entry changed."""
    if newest == INT64_MIN:
        return 0.0
    return max(0.0, round((snapshot - newest) / _DAY, 1))


def outside(mount: str) -> str:
    """The Top Level Path of entries in no base directory."""
    return f"{mount} (outside any base directory)"


class Totals:
    """Tallies from any number of ``usage`` replicas, added up; per stats file."""

    def __init__(self) -> None:
        self.dirs: dict[tuple[str, int, bytes | None, bytes], list[int]] = {}
        self.users: dict[tuple[str, int, int], list[int]] = {}
        #: per (stats file, gid): the age profile (``stages.wrstat.layout.AGES0`` onwards)
        self.ages: dict[tuple[str, int], np.ndarray] = {}
        self.accepted: dict[str, int] = {}

    def add(self, partial: dict[str, Any]) -> None:
        d: Columns = partial["dirs"]
        types = [d[f"type_{i}"].tolist() for i in range(len(FILE_TYPES))]
        rows = zip(d["source"].tolist(), d["gid"].tolist(), d["base"].tolist(),
                   d["sub"].tolist(), d["usage"].tolist(), d["files"].tolist(),
                   d["newest"].tolist(), *types, strict=True)  # fmt: skip
        for src, gid, base, sub, usage, files, newest, *per_type in rows:
            cur = self.dirs.get((src, gid, base, sub))
            if cur is None:
                self.dirs[(src, gid, base, sub)] = [usage, files, newest, *per_type]
            else:
                cur[0] += usage
                cur[1] += files
                cur[2] = max(cur[2], newest)
                for i, v in enumerate(per_type):
                    cur[3 + i] += v
        u: Columns = partial["users"]
        for src, uid, gid, usage, files, newest in zip(
            u["source"].tolist(),
            u["uid"].tolist(),
            u["gid"].tolist(),
            u["usage"].tolist(),
            u["files"].tolist(),
            u["newest"].tolist(),
            strict=True,
        ):
            cur = self.users.get((src, uid, gid))
            if cur is None:
                self.users[(src, uid, gid)] = [usage, files, newest]
            else:
                cur[0] += usage
                cur[1] += files
                cur[2] = max(cur[2], newest)
        ages = partial.get("ages")
        if ages is not None and len(u):
            self._add_ages(u, np.asarray(ages, dtype=np.int64))
        for file, n in partial["accepted"].items():
            self.accepted[file] = self.accepted.get(file, 0) + n

    def _add_ages(self, users: Columns, ages: np.ndarray) -> None:
        """Add user rows' age profiles to their groups' (one sum per group, not per row)."""
        keys = list(zip(users["source"].tolist(), users["gid"].tolist(), strict=True))
        index = {k: i for i, k in enumerate(dict.fromkeys(keys))}
        summed = np.zeros((len(index), AGE_WIDTH), dtype=np.int64)
        np.add.at(summed, np.array([index[k] for k in keys]), ages)
        for key, i in index.items():
            cur = self.ages.get(key)
            self.ages[key] = summed[i] if cur is None else cur + summed[i]

    def groups(self) -> dict[tuple[str, int, bytes | None], list[int]]:
        """Per (stats file, gid, base directory): usage, files, newest."""
        out: dict[tuple[str, int, bytes | None], list[int]] = {}
        for (src, gid, base, _), (usage, files, newest, *_) in self.dirs.items():
            cur = out.setdefault((src, gid, base), [0, 0, INT64_MIN])
            cur[0] += usage
            cur[1] += files
            cur[2] = max(cur[2], newest)
        return out


class Reports:
    """Write the wrstat usage reports (see the module docstring) into ``dir``.

    ``history``: the history store (``""``: ``<dir>/history.sqlite``; a path; a
    ``mysql://USER@HOST[:PORT]/DATABASE`` URL; ``off``). ``identities``: ``system``,
    ``ldap`` (with ``ldap``: search bases and attribute names) or a mapping file's path.
    ``quota_command`` (``""``: none) and ``quota_file``: where quotas come from.
    ``warnings``: the warning table (default lurge's); ``forecast_points``: snapshots a
    forecast is fitted to; ``plots``: pictures of that many groups closest to full;
    ``retry``: ``{attempts, backoff}`` for history writes."""

    def __init__(
        self,
        dir: str,
        history: str | bool | None = None,
        identities: str | None = None,
        ldap: Mapping[str, Any] | None = None,
        quota_command: str | None = LFS_QUOTA,
        quota_file: str | None = None,
        warnings: Mapping[str, Any] | None = None,
        forecast_points: int = DEFAULT_POINTS,
        plots: int = 10,
        retry: Mapping[str, float] | None = None,
    ) -> None:
        self.dir = Path(dir)
        self.totals = Totals()
        self.files: dict[str, dict[str, Any]] = {}
        self.rejects: list[dict[str, Any]] = []
        self.plots = plots
        self.enricher = Enricher(self.dir, history, identities, ldap, quota_command,
                                 quota_file, warnings, forecast_points, retry)  # fmt: skip

    async def setup(self, ctx: Context) -> None:
        await asyncio.to_thread(self.dir.mkdir, parents=True, exist_ok=True)
        await self.enricher.start(ctx)

    def process(self, item: Any, ctx: Context) -> None:
        for one in item if isinstance(item, list) else [item]:
            kind = one.get("kind")
            if kind == "partial":
                self.totals.add(one)
            elif kind == "reject":
                self.rejects.append(one)
            elif kind == "file":
                self.files[one["file"]] = one

    async def finish(self, ctx: Context) -> list[dict[str, Any]]:
        """Write the reports; returns each volume's figures of each date (``snapshots``),
        for a stage after this one (``stages.diff.changes``) to compare."""
        self._check()
        try:
            by_day: dict[dt.date, list[dict[str, Any]]] = {}
            for note in self.files.values():
                by_day.setdefault(snapshot_day(note), []).append(note)
            dates = self._figures(by_day)
            enriched = await self.enricher.enrich(list(dates.values()), ctx)
            for day, figures in sorted(dates.items()):
                date, notes = f"{day:%Y%m%d}", by_day[day]
                rejected = await asyncio.to_thread(self._write, date, figures, enriched, notes)
                lines = sum(n["lines"] for n in notes)
                ctx.log.info(
                    "reports for %s written to %s: %s lines from %d file(s), %s rejected%s",
                    date, self.dir, f"{lines:,}", len(notes), f"{rejected:,}",
                    f" (see rejects-{date}.tsv)" if rejected else "",
                )  # fmt: skip
            if dates and enriched.unknown_quotas:
                await asyncio.to_thread(self._unknown_quotas, f"{max(dates):%Y%m%d}", enriched, ctx)
            if dates and self.plots > 0:
                newest = max(dates)
                await self._pictures(dates[newest], enriched, ctx)
                await self._age_pictures(dates[newest], enriched, ctx)
        finally:
            await self.enricher.close()
        return [s for day in sorted(dates) for s in snapshots(dates[day], by_day[day], enriched)]

    def _check(self) -> None:
        """Every line is in the reports or in the rejects, once."""
        rejected: dict[str, int] = {}
        for r in self.rejects:
            rejected[r["file"]] = rejected.get(r["file"], 0) + 1
        for file, note in self.files.items():
            used, bad = self.totals.accepted.get(file, 0), rejected.get(file, 0)
            if used + bad != note["lines"]:
                msg = (
                    f"{file}: {note['lines']:,} lines read, but {used:,} in the reports and "
                    f"{bad:,} rejected; this is a bug, please report it"
                )
                raise RuntimeError(msg)

    def _figures(self, by_day: dict[dt.date, list[dict[str, Any]]]) -> dict[dt.date, DateFigures]:
        """The tallies of each snapshot date (``by_day``: its files' notes), as rows before
        names and forecasts."""
        dates = {day: DateFigures(day) for day in by_day}
        of_file = {n["file"]: (n, dates[day]) for day, notes in by_day.items() for n in notes}
        t = self.totals

        def note(file: str) -> tuple[dict[str, Any], DateFigures]:
            return of_file[file]

        def top(n: dict[str, Any], base: bytes | None) -> str:
            return outside(n["mount"]) if base is None else go_escape(base)

        for (file, gid, base), (usage, files, newest) in t.groups().items():
            n, d = note(file)
            d.groups.append(GroupFigures(n["volume"], n["mount"], gid, top(n, base), usage,
                                         files, days_since(n["snapshot"], newest)))  # fmt: skip
        for (file, uid, gid), (usage, files, newest) in t.users.items():
            n, d = note(file)
            d.users.append(UserFigures(n["volume"], uid, gid, usage, files,
                                       days_since(n["snapshot"], newest)))  # fmt: skip
        for (file, gid, base, sub), (usage, files, newest, *per_type) in t.dirs.items():
            n, d = note(file)
            types = {k: v for k, v in zip(FILE_TYPES, per_type, strict=True) if v}
            d.directories.append(DirectoryFigures(
                n["volume"], top(n, base), go_escape(sub), gid, usage, files,
                days_since(n["snapshot"], newest), types))  # fmt: skip
        for (file, gid), a in t.ages.items():
            n, d = note(file)
            parts = (tuple(a[k * N_AGES : (k + 1) * N_AGES].tolist()) for k in range(4))
            d.ages.append(AgeFigures(n["volume"], gid, *parts))
        for d in dates.values():
            d.ages.sort(key=lambda a: (a.volume, a.gid))
            d.groups.sort(key=lambda g: (g.volume, g.base_directory, g.gid))
            d.users.sort(key=lambda u: (u.volume, u.uid, u.gid))
            d.directories.sort(key=lambda x: (x.volume, x.base_directory, x.path, x.gid))
        return dates

    def _write(self, date: str, d: DateFigures, e: Enriched, notes: list[dict[str, Any]]) -> int:
        """Write the reports of one snapshot date; returns how many lines were rejected."""
        s = e.dates[d.date]
        group_rows = [
            (g.volume, g.base_directory, known(e.groups[g.gid].pi), e.groups[g.gid].name, g.gid,
             g.used, quota, f"{g.last_modified_days:.1f}", g.files, warning,
             None if full is None else f"{full:.1f}")
            for g, quota, warning, full in zip(d.groups, s.quota, s.warning, s.days_to_full,
                                               strict=True)
        ]  # fmt: skip
        user_rows = [(u.volume, e.users[u.uid], u.uid, e.groups[u.gid].name, u.gid, u.used,
                      u.files, f"{u.last_modified_days:.1f}") for u in d.users]  # fmt: skip
        dir_rows = [(x.volume, x.base_directory, x.path, e.groups[x.gid].name, x.gid, x.used,
                     x.files, f"{x.last_modified_days:.1f}",
                     *(x.filetypes.get(t, 0) for t in FILE_TYPES))
                    for x in d.directories]  # fmt: skip
        age_rows = [
            row
            for a in d.ages
            for row in (
                (a.volume, e.groups[a.gid].name, a.gid, "mtime", *a.usage_by_mtime,
                 *a.files_by_mtime),
                (a.volume, e.groups[a.gid].name, a.gid, "atime", *a.usage_by_atime,
                 *a.files_by_atime),
            )
        ]  # fmt: skip
        inputs = {n["file"] for n in notes}
        reject_rows = sorted(
            ((r["file"], r["line"], r["reason"], r["raw"]) for r in self.rejects
             if r["file"] in inputs),
        )  # fmt: skip
        self._both(f"group-{date}", GROUP_COLUMNS, group_rows, _GROUP_KEYS)
        self._both(f"user-{date}", USER_COLUMNS, user_rows, _USER_KEYS)
        self._both(f"directory-{date}", DIRECTORY_COLUMNS, dir_rows, _DIRECTORY_KEYS)
        self._both(f"ages-{date}", AGE_COLUMNS, age_rows, _AGE_KEYS)
        write_atomically(self.dir / f"rejects-{date}.tsv", tsv(REJECT_COLUMNS, reject_rows))
        return len(reject_rows)

    def _unknown_quotas(self, date: str, e: Enriched, ctx: Context) -> None:
        """Every group without a quota, and why, in a file; one line in the run summary."""
        path = self.dir / f"quota-unknown-{date}.tsv"
        write_atomically(path, tsv(("Volume", "Group", "Reason"), e.unknown_quotas))
        reasons = Counter(why for _, _, why in e.unknown_quotas)
        names = list(dict.fromkeys(group for _, group, _ in e.unknown_quotas))
        volumes = len({volume for volume, _, _ in e.unknown_quotas})
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        why, n = reasons.most_common(1)[0]
        also = f" ({n} of {len(e.unknown_quotas)})" if len(reasons) > 1 else ""
        ctx.warn(
            f"no quota for {len(names)} group(s) on {volumes} volume(s) ({shown}): "
            f"{why}{also}; their Quota and Warning are '-'. Each, with the reason, is in {path}; "
            "set quota_command, or QUOTA_FILE to a group,limit[,volume] CSV (KiB)"
        )

    async def _pictures(self, d: DateFigures, e: Enriched, ctx: Context) -> None:
        """Pictures of the groups closest to full on the newest date, with their history."""
        s = e.dates[d.date]
        horizon = max(e.thresholds.horizons, default=7)
        now = [
            plots.GroupPicture(g.volume, e.groups[g.gid].name, g.base_directory, [d.date],
                               [float(g.used)], float(quota), slope, horizon, warning or "",
                               g.gid)
            for g, quota, slope, warning in zip(d.groups, s.quota, s.slope, s.warning,
                                                strict=True) if quota
        ]  # fmt: skip
        pictures = []
        for p in plots.closest_to_full(now, self.plots):
            assert p.gid is not None
            kept = dict(await self.enricher.series(p.gid, p.volume, p.base_directory))
            kept[d.date] = int(p.used[-1])
            days = sorted(kept)
            pictures.append(replace(p, dates=days, used=[float(kept[x]) for x in days]))
        if pictures:
            paths = await asyncio.to_thread(plots.draw_all, pictures, self.dir)
            ctx.log.info("%d picture(s) of the groups closest to full: %s", len(paths),
                         ", ".join(p.name for p in paths))  # fmt: skip

    async def _age_pictures(self, d: DateFigures, e: Enriched, ctx: Context) -> None:
        """One picture per volume of the newest date's age profiles."""
        found = age_plots.pictures(d.ages, d.date, lambda gid: e.groups[gid].name)
        if found:
            paths = await asyncio.to_thread(age_plots.draw_all, found, self.dir)
            ctx.log.info("%d picture(s) of usage by age: %s", len(paths),
                         ", ".join(p.name for p in paths))  # fmt: skip

    def _both(self, stem: str, header: Sequence[str], rows: list[tuple[Any, ...]],
              keys: Sequence[str]) -> None:  # fmt: skip
        write_atomically(self.dir / f"{stem}.tsv", tsv(header, rows))
        json_rows = [tuple(_number(k, v) for k, v in zip(keys, row, strict=True)) for row in rows]
        write_atomically(self.dir / f"{stem}.jsonl", jsonl(keys, json_rows))


def snapshots(d: DateFigures, notes: list[dict[str, Any]], e: Enriched) -> list[dict[str, Any]]:
    """One item per volume of a date: its group and user rows with their names, and the
    stats file they came from."""
    out = []
    for n in sorted(notes, key=lambda n: n["volume"]):
        volume = n["volume"]
        groups = [g for g in d.groups if g.volume == volume]
        users = [u for u in d.users if u.volume == volume]
        out.append({
            "kind": "snapshot", "volume": volume, "date": f"{d.date:%Y%m%d}",
            "file": n["file"], "mount": n["mount"],
            "groups": Columns(
                gid=np.array([g.gid for g in groups], np.uint32),
                base=np.array([g.base_directory for g in groups], dtype=object),
                usage=np.array([g.used for g in groups], np.int64),
                files=np.array([g.files for g in groups], np.int64)),
            "users": Columns(
                uid=np.array([u.uid for u in users], np.uint32),
                gid=np.array([u.gid for u in users], np.uint32),
                usage=np.array([u.used for u in users], np.int64),
                files=np.array([u.files for u in users], np.int64)),
            "group_names": {str(g): e.groups[g].name for g in {g.gid for g in groups}
                            | {u.gid for u in users}},
            "user_names": {str(u.uid): e.users[u.uid] for u in users},
        })  # fmt: skip
    return out


def _number(key: str, value: Any) -> Any:
    if key in ("last_modified_days", "days_until_full") and value is not None:
        return float(value)
    return value


_GROUP_KEYS = ("volume", "top_level_path", "pi", "group", "gid", "usage", "quota",
               "last_modified_days", "files", "warning", "days_until_full")  # fmt: skip
_USER_KEYS = ("volume", "user", "uid", "group", "gid", "usage", "files", "last_modified_days")
_DIRECTORY_KEYS = ("volume", "top_level_path", "directory", "group", "gid", "usage", "files",
                   "last_modified_days", *(f"usage_{t.replace('/', '_').replace('.', '_')}"
                                           for t in FILE_TYPES))  # fmt: skip


def _age_key(age_class: str) -> str:
    """An age class as a JSON key: ``<1m`` -> ``lt_1m``, ``1-2m`` -> ``1_2m``."""
    return age_class.replace("<", "lt_").replace(">", "gt_").replace("-", "_")


_AGE_KEYS = ("volume", "group", "gid", "by", *(f"usage_{_age_key(a)}" for a in AGE_CLASSES),
             *(f"files_{_age_key(a)}" for a in AGE_CLASSES))  # fmt: skip
