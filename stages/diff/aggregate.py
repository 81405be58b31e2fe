"""Aggregate snapshots of a volume and what changed between two of them.

A snapshot holds, for one volume and date, the usage and file count per (gid, base
directory) and per (uid, gid): what the usage reports and the history keep. The diff of two
gives, per row of either, the figures before and after, the change in bytes and percent
(none when there was nothing before), and whether the row ``appeared``, ``vanished``,
``changed`` or stayed ``unchanged``; and the groups and users that appeared or vanished
from the volume altogether.

>>> import numpy as np
>>> a = Snapshot("scratch1", "20261101", groups_table([(1, "/a", 100, 1)]), users_table([]))
>>> b = Snapshot("scratch1", "20261102", groups_table([(1, "/a", 150, 2)]), users_table([]))
>>> d = diff(a, b)
>>> d.groups["change"].tolist(), d.groups["percent"].tolist(), d.groups["status"].tolist()
([50], [50.0], ['changed'])
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pipeline import Columns

APPEARED, VANISHED, CHANGED, UNCHANGED = "appeared", "vanished", "changed", "unchanged"

#: the columns of a diff's rows after their key columns
FIGURES = ("usage_before", "usage_after", "files_before", "files_after", "change", "percent",
           "status")  # fmt: skip


def groups_table(rows: Iterable[tuple[int, str, int, int]]) -> Columns:
    """(gid, base directory, usage, files) rows as a snapshot's ``groups``."""
    rows = list(rows)
    gid, base, used, files = zip(*rows, strict=True) if rows else ((), (), (), ())
    return Columns(
        gid=np.array(gid, np.uint32),
        base=np.array(base, dtype=object),
        usage=np.array(used, np.int64),
        files=np.array(files, np.int64),
    )


def users_table(rows: Iterable[tuple[int, int, int, int]]) -> Columns:
    """(uid, gid, usage, files) rows as a snapshot's ``users``."""
    rows = list(rows)
    uid, gid, used, files = zip(*rows, strict=True) if rows else ((), (), (), ())
    return Columns(
        uid=np.array(uid, np.uint32),
        gid=np.array(gid, np.uint32),
        usage=np.array(used, np.int64),
        files=np.array(files, np.int64),
    )


@dataclass
class Snapshot:
    """One volume's figures on one date (``date``: YYYYMMDD)."""

    volume: str
    date: str
    groups: Columns
    users: Columns
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def run_id(self) -> str:
        return f"{self.volume}@{self.date}"


@dataclass
class Diff:
    """What changed between two snapshots of a volume."""

    volume: str
    before: str
    after: str
    groups: Columns
    users: Columns
    appeared_groups: list[int]
    vanished_groups: list[int]
    appeared_users: list[int]
    vanished_users: list[int]

    def totals(self) -> dict[str, int]:
        g = self.groups
        return {
            "usage_before": int(g["usage_before"].sum()),
            "usage_after": int(g["usage_after"].sum()),
            "files_before": int(g["files_before"].sum()),
            "files_after": int(g["files_after"].sum()),
        }


def _rows(cols: Columns, keys: tuple[str, ...]) -> dict[tuple[Any, ...], tuple[int, int]]:
    key_cols = [cols[k].tolist() for k in keys]
    figures = zip(cols["usage"].tolist(), cols["files"].tolist(), strict=True)
    return dict(zip(zip(*key_cols, strict=True), figures, strict=True)) if key_cols else {}


def _compare(old: Columns, new: Columns, keys: tuple[str, ...]) -> Columns:
    a, b = _rows(old, keys), _rows(new, keys)
    out: dict[str, list[Any]] = {k: [] for k in (*keys, *FIGURES)}
    for key in sorted(a.keys() | b.keys(), key=lambda k: tuple(str(v) for v in k)):
        (ub, fb), (ua, fa) = a.get(key, (0, 0)), b.get(key, (0, 0))
        status = (
            APPEARED
            if key not in a
            else VANISHED
            if key not in b
            else (UNCHANGED if (ub, fb) == (ua, fa) else CHANGED)
        )
        for k, v in zip(keys, key, strict=True):
            out[k].append(v)
        out["usage_before"].append(ub)
        out["usage_after"].append(ua)
        out["files_before"].append(fb)
        out["files_after"].append(fa)
        out["change"].append(ua - ub)
        out["percent"].append(round(100.0 * (ua - ub) / ub, 2) if ub else float("nan"))
        out["status"].append(status)
    types = {
        "gid": np.uint32,
        "uid": np.uint32,
        "base": object,
        "status": object,
        "percent": np.float64,
    }
    return Columns({k: np.array(v, dtype=types.get(k, np.int64)) for k, v in out.items()})


def diff(old: Snapshot, new: Snapshot) -> Diff:
    """What changed from ``old`` to ``new`` (see the module docstring)."""
    gids_a, gids_b = set(old.groups["gid"].tolist()), set(new.groups["gid"].tolist())
    uids_a, uids_b = set(old.users["uid"].tolist()), set(new.users["uid"].tolist())
    return Diff(
        volume=new.volume,
        before=old.date,
        after=new.date,
        groups=_compare(old.groups, new.groups, ("gid", "base")),
        users=_compare(old.users, new.users, ("uid", "gid")),
        appeared_groups=sorted(gids_b - gids_a),
        vanished_groups=sorted(gids_a - gids_b),
        appeared_users=sorted(uids_b - uids_a),
        vanished_users=sorted(uids_a - uids_b),
    )
