"""Finding wrstat stats files and reading their names: volume, mount path, snapshot time.

Two namings, by wrstat era:

* up to 6.1: ``<YYYYMMDD>_<volume>.<a>.<b>.stats.gz`` (the snapshot is 00:00 UTC that day);
* from 6.2: a directory ``<YYYYMMDD-hhmmss>_<mount path>`` holding ``stats.gz`` (UTC),
  where each "/" of the mount path is written as U+FF0F, the fullwidth solidus.

The volume is the last component of the mount path (``scratch123`` either way). The
snapshot time always comes from the name, never from the file's mtime.
"""

from __future__ import annotations

import calendar
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

FULLWIDTH_SLASH = "\uff0f"

_OLD = re.compile(r"^(\d{8})_([^./]+)\.([^.]+)\.([^.]+)\.stats\.gz$")
_NEW = re.compile(r"^(\d{8}-\d{6})_(.+)$")


class NamingError(ValueError):
    """A path given as stats input cannot be used; the message says why and what to do."""


@dataclass(frozen=True)
class StatsFile:
    path: Path
    volume: str
    #: the mount path if the name gives it (wrstat 6.2 on), else None
    mount: str | None
    #: seconds since the epoch, UTC
    snapshot: int

    @property
    def date(self) -> str:
        return time.strftime("%Y%m%d", time.gmtime(self.snapshot))


def _utc(stamp: str, fmt: str) -> int | None:
    try:
        return calendar.timegm(time.strptime(stamp, fmt))
    except ValueError:
        return None


def from_name(path: Path) -> StatsFile | None:
    """The stats file named by ``path`` (either naming), or None if the name is neither."""
    m = _OLD.match(path.name)
    if m:
        snapshot = _utc(m.group(1), "%Y%m%d")
        return StatsFile(path, m.group(2), None, snapshot) if snapshot is not None else None
    if path.name == "stats.gz":
        m = _NEW.match(path.parent.name)
        if m:
            snapshot = _utc(m.group(1), "%Y%m%d-%H%M%S")
            mount = m.group(2).replace(FULLWIDTH_SLASH, "/")
            volume = mount.rstrip("/").rsplit("/", 1)[-1]
            if snapshot is not None and volume:
                return StatsFile(path, volume, mount.rstrip("/") or "/", snapshot)
    return None


def _candidates(folder: Path) -> list[StatsFile]:
    found = []
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        path = Path(entry.path)
        if entry.is_file():
            stats = from_name(path)
        elif entry.is_dir():
            stats = from_name(path / "stats.gz") if (path / "stats.gz").is_file() else None
        else:
            stats = None
        if stats is not None:
            found.append(stats)
    return found


def discover(
    where: str | os.PathLike[str], max_age_days: float | None = None, every: bool = False
) -> list[StatsFile]:
    """The stats files to read: ``where`` itself if it is a file, else the newest file of
    each volume in the directory ``where`` (those more than ``max_age_days`` older than the
    newest file there are left out), sorted by volume. With ``every``, each volume's
    snapshot of every date instead (the newest of a date that has several), oldest first:
    to fill the usage history from older wrstat output."""
    path = Path(where)
    if path.is_file():
        stats = from_name(path)
        if stats is None:
            msg = (
                f"{path}: cannot tell the volume and date of a stats file named "
                f"{path.name!r}; wrstat names them <YYYYMMDD>_<volume>.<a>.<b>.stats.gz, or "
                "<YYYYMMDD-hhmmss>_<mount path>/stats.gz"
            )
            raise NamingError(msg)
        return [stats]
    if not path.is_dir():
        msg = f"{path}: no such file or directory; point WRSTAT_DIR at wrstat's output"
        raise NamingError(msg)
    newest: dict[tuple[str, str], StatsFile] = {}
    for stats in _candidates(path):
        key = (stats.volume, stats.date if every else "")
        best = newest.get(key)
        if best is None or stats.snapshot > best.snapshot:
            newest[key] = stats
    if not newest:
        msg = (
            f"{path}: no wrstat stats files here (<YYYYMMDD>_<volume>.<a>.<b>.stats.gz, or "
            "<YYYYMMDD-hhmmss>_<mount path>/stats.gz)"
        )
        raise NamingError(msg)
    order = (lambda s: (s.snapshot, s.volume)) if every else (lambda s: (s.volume, 0))
    chosen = sorted(newest.values(), key=order)
    if max_age_days is not None:
        latest = max(s.snapshot for s in chosen)
        chosen = [s for s in chosen if latest - s.snapshot <= max_age_days * 86400]
    return chosen
