"""The ``report`` stage: add up the usage tallies and write the reports of each snapshot date.

In ``dir`` (created if missing), for each date of input (not of the run), written atomically:

* ``group-<YYYYMMDD>.tsv``: Volume, Top Level Path, PI, Group, GID, Usage (bytes),
  Quota (bytes), Last Modified (days), Files, Warning; sorted by volume, path, gid;
* ``user-<YYYYMMDD>.tsv``: Volume, User, UID, Group, GID, Usage (bytes), Files,
  Last Modified (days); sorted by volume, uid, gid;
* ``directory-<YYYYMMDD>.tsv``: Volume, Top Level Path, Directory, Group, GID,
  Usage (bytes), Files, Last Modified (days), then the usage of each file type;
* the same as JSON lines (``group-<YYYYMMDD>.jsonl``, ...);
* ``rejects-<YYYYMMDD>.tsv``: File, Line, Reason, Raw, for every line that was not used.

Paths are written with Go-style escapes. Names come from the system's group and password
databases (PI, Quota and Warning are ``-`` here). Before writing, every input line is
checked to be in exactly one place: the reports, or the rejects.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from pipeline import Columns, Context
from stages.wrstat.escape import go_escape
from stages.wrstat.layout import FILE_TYPES, INT64_MIN

GROUP_COLUMNS = ("Volume", "Top Level Path", "PI", "Group", "GID", "Usage (bytes)",
                 "Quota (bytes)", "Last Modified (days)", "Files", "Warning")  # fmt: skip
USER_COLUMNS = ("Volume", "User", "UID", "Group", "GID", "Usage (bytes)", "Files",
                "Last Modified (days)")  # fmt: skip
DIRECTORY_COLUMNS = ("Volume", "Top Level Path", "Directory", "Group", "GID",
                     "Usage (bytes)", "Files", "Last Modified (days)", *FILE_TYPES)  # fmt: skip
REJECT_COLUMNS = ("File", "Line", "Reason", "Raw")

_DAY = 86400


def days_since(snapshot: int, newest: int) -> float:
    """Last Modified (days): how long before the snapshot the newest entry changed."""
    if newest == INT64_MIN:
        return 0.0
    return max(0.0, round((snapshot - newest) / _DAY, 1))


def outside(mount: str) -> str:
    """The Top Level Path of entries in no base directory."""
    return f"{mount} (outside any base directory)"


def write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8", newline="\n") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)


def tsv(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    lines = ["\t".join(header)]
    lines.extend("\t".join("-" if v is None else str(v) for v in row) for row in rows)
    return "\n".join(lines) + "\n"


def jsonl(keys: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    return "".join(json.dumps(dict(zip(keys, row, strict=True)), ensure_ascii=False) + "\n"
                   for row in rows)  # fmt: skip


class Names:
    """Group and user names from the system databases, looked up once each."""

    def __init__(self) -> None:
        self._groups: dict[int, str] = {}
        self._users: dict[int, str] = {}

    def group(self, gid: int) -> str:
        return _name(self._groups, gid, lambda i: grp.getgrgid(i).gr_name)

    def user(self, uid: int) -> str:
        return _name(self._users, uid, lambda i: pwd.getpwuid(i).pw_name)


def _name(known: dict[int, str], number: int, look_up: Callable[[int], str]) -> str:
    """The name of a user or group number, or the number itself where none is known."""
    if number not in known:
        try:
            known[number] = look_up(number)
        except KeyError:
            known[number] = str(number)
    return known[number]


class Totals:
    """Tallies from any number of ``usage`` replicas, added up."""

    def __init__(self) -> None:
        self.dirs: dict[tuple[str, int, bytes | None, bytes], list[int]] = {}
        self.users: dict[tuple[str, int, int], list[int]] = {}
        self.accepted: dict[str, int] = {}

    def add(self, partial: dict[str, Any]) -> None:
        d: Columns = partial["dirs"]
        types = [d[f"type_{i}"].tolist() for i in range(len(FILE_TYPES))]
        rows = zip(d["volume"].tolist(), d["gid"].tolist(), d["base"].tolist(),
                   d["sub"].tolist(), d["usage"].tolist(), d["files"].tolist(),
                   d["newest"].tolist(), *types, strict=True)  # fmt: skip
        for vol, gid, base, sub, usage, files, newest, *per_type in rows:
            cur = self.dirs.get((vol, gid, base, sub))
            if cur is None:
                self.dirs[(vol, gid, base, sub)] = [usage, files, newest, *per_type]
            else:
                cur[0] += usage
                cur[1] += files
                cur[2] = max(cur[2], newest)
                for i, v in enumerate(per_type):
                    cur[3 + i] += v
        u: Columns = partial["users"]
        for vol, uid, gid, usage, files, newest in zip(
            u["volume"].tolist(),
            u["uid"].tolist(),
            u["gid"].tolist(),
            u["usage"].tolist(),
            u["files"].tolist(),
            u["newest"].tolist(),
            strict=True,
        ):
            cur = self.users.get((vol, uid, gid))
            if cur is None:
                self.users[(vol, uid, gid)] = [usage, files, newest]
            else:
                cur[0] += usage
                cur[1] += files
                cur[2] = max(cur[2], newest)
        for file, n in partial["accepted"].items():
            self.accepted[file] = self.accepted.get(file, 0) + n

    def groups(self) -> dict[tuple[str, int, bytes | None], list[int]]:
        """Per (volume, gid, base directory): usage, files, newest."""
        out: dict[tuple[str, int, bytes | None], list[int]] = {}
        for (vol, gid, base, _), (usage, files, newest, *_) in self.dirs.items():
            cur = out.setdefault((vol, gid, base), [0, 0, INT64_MIN])
            cur[0] += usage
            cur[1] += files
            cur[2] = max(cur[2], newest)
        return out


class Reports:
    """Write the wrstat usage reports (see the module docstring) into ``dir``."""

    def __init__(self, dir: str) -> None:
        self.dir = Path(dir)
        self.totals = Totals()
        self.files: dict[str, dict[str, Any]] = {}
        self.rejects: list[dict[str, Any]] = []
        self.names = Names()

    def process(self, item: Any, ctx: Context) -> None:
        for one in item if isinstance(item, list) else [item]:
            kind = one.get("kind")
            if kind == "partial":
                self.totals.add(one)
            elif kind == "reject":
                self.rejects.append(one)
            elif kind == "file":
                self.files[one["file"]] = one

    def finish(self, ctx: Context) -> None:
        self._check()
        self.dir.mkdir(parents=True, exist_ok=True)
        dates: dict[str, list[dict[str, Any]]] = {}
        for note in self.files.values():
            date = time.strftime("%Y%m%d", time.gmtime(note["snapshot"]))
            dates.setdefault(date, []).append(note)
        for date, notes in sorted(dates.items()):
            rejected = self._write(date, notes)
            lines = sum(n["lines"] for n in notes)
            ctx.log.info(
                "reports for %s written to %s: %s lines from %d file(s), %s rejected%s",
                date, self.dir, f"{lines:,}", len(notes), f"{rejected:,}",
                f" (see rejects-{date}.tsv)" if rejected else "",
            )  # fmt: skip

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

    def _write(self, date: str, notes: list[dict[str, Any]]) -> int:
        """Write the reports of one snapshot date; returns how many lines were rejected."""
        vols = {n["volume"]: n for n in notes}
        t = self.totals
        names = self.names

        def top(vol: str, base: bytes | None) -> str:
            return outside(vols[vol]["mount"]) if base is None else go_escape(base)

        group_rows = []
        for (vol, gid, base), (usage, files, newest) in t.groups().items():
            if vol in vols:
                snap = vols[vol]["snapshot"]
                days = f"{days_since(snap, newest):.1f}"
                group_rows.append((vol, top(vol, base), None, names.group(gid), gid, usage,
                                   None, days, files, None))  # fmt: skip
        group_rows.sort(key=lambda r: (r[0], r[1], r[4]))
        user_rows = []
        for (vol, uid, gid), (usage, files, newest) in t.users.items():
            if vol in vols:
                snap = vols[vol]["snapshot"]
                user_rows.append((vol, names.user(uid), uid, names.group(gid), gid, usage, files,
                                  f"{days_since(snap, newest):.1f}"))  # fmt: skip
        user_rows.sort(key=lambda r: (r[0], r[2], r[4]))
        dir_rows = []
        for (vol, gid, base, sub), (usage, files, newest, *per_type) in t.dirs.items():
            if vol in vols:
                snap = vols[vol]["snapshot"]
                days = f"{days_since(snap, newest):.1f}"
                dir_rows.append((vol, top(vol, base), go_escape(sub), names.group(gid), gid,
                                 usage, files, days, *per_type))  # fmt: skip
        dir_rows.sort(key=lambda r: (r[0], r[1], r[2], r[4]))
        inputs = {n["file"] for n in notes}
        reject_rows = sorted(
            ((r["file"], r["line"], r["reason"], r["raw"]) for r in self.rejects
             if r["file"] in inputs),
        )  # fmt: skip
        self._both(f"group-{date}", GROUP_COLUMNS, group_rows, _GROUP_KEYS)
        self._both(f"user-{date}", USER_COLUMNS, user_rows, _USER_KEYS)
        self._both(f"directory-{date}", DIRECTORY_COLUMNS, dir_rows, _DIRECTORY_KEYS)
        write_atomically(self.dir / f"rejects-{date}.tsv", tsv(REJECT_COLUMNS, reject_rows))
        return len(reject_rows)

    def _both(self, stem: str, header: Sequence[str], rows: list[tuple[Any, ...]],
              keys: Sequence[str]) -> None:  # fmt: skip
        write_atomically(self.dir / f"{stem}.tsv", tsv(header, rows))
        json_rows = [tuple(_number(k, v) for k, v in zip(keys, row, strict=True)) for row in rows]
        write_atomically(self.dir / f"{stem}.jsonl", jsonl(keys, json_rows))


def _number(key: str, value: Any) -> Any:
    return float(value) if key == "last_modified_days" else value


_GROUP_KEYS = ("volume", "top_level_path", "pi", "group", "gid", "usage", "quota",
               "last_modified_days", "files", "warning")  # fmt: skip
_USER_KEYS = ("volume", "user", "uid", "group", "gid", "usage", "files", "last_modified_days")
_DIRECTORY_KEYS = ("volume", "top_level_path", "directory", "group", "gid", "usage", "files",
                   "last_modified_days", *(f"usage_{t.replace('/', '_').replace('.', '_')}"
                                           for t in FILE_TYPES))  # fmt: skip
