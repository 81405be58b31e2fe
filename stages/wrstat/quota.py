"""Group quotas on a volume, in bytes: from Lustre's ``lfs quota``, or from a CSV file.

``lfs quota -gq GROUP MOUNT`` prints, without a header, the file system, the KiB used, the
soft limit and the **hard limit** (KiB), then inode figures; lurge took the hard limit times
1024, and so does ``LfsQuota``. The command is a template (``{group}``, ``{gid}``,
``{mount}``), so a wrapper or another tool with the same output can stand in.

``CsvQuota`` reads ``group,limit`` rows (the group by name or gid; the limit in KiB, as in
lurge's quota repository), with an optional ``volume`` column to give limits per volume.

``Quotas`` asks each source in turn. When none answers for a group, its quota is unknown
(``-`` in the reports) and the run summary says which groups and why; it never fails a run.
"""

from __future__ import annotations

import csv
import shlex
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

LFS_QUOTA = "lfs quota -gq {group} {mount}"
#: seconds one ``lfs quota`` may take (a hung file system must not hang the run)
COMMAND_TIMEOUT = 30.0


class QuotaError(Exception):
    """Why one source had no quota for one group."""


class Source(Protocol):
    name: str

    def limit(self, volume: str, mount: str, group: str, gid: int) -> int:
        """The hard limit in bytes; ``QuotaError`` if unknown here (0: no limit set)."""
        ...


class LfsQuota:
    """``lfs quota`` (or a command with its output), once per (group, mount)."""

    def __init__(self, command: str = LFS_QUOTA, timeout: float = COMMAND_TIMEOUT) -> None:
        self.template = command
        self.timeout = timeout
        words = shlex.split(command)
        self.name = f"'{words[0]}'" if words else "''"
        #: why the command is not run again this run (not installed; a hung file system)
        self.broken: str | None = None

    def limit(self, volume: str, mount: str, group: str, gid: int) -> int:
        if self.broken:
            raise QuotaError(self.broken)
        argv = [
            part.format(group=group, gid=gid, mount=mount) for part in shlex.split(self.template)
        ]
        try:
            done = subprocess.run(
                argv, capture_output=True, text=True, timeout=self.timeout, check=False
            )
        except FileNotFoundError:
            self.broken = f"{argv[0]} is not installed here"
            raise QuotaError(self.broken) from None
        except subprocess.TimeoutExpired:
            # one hung call means a hung file system: do not wait as long for every group
            self.broken = (
                f"{' '.join(argv)} took more than {self.timeout:g}s; not asked again this run"
            )
            raise QuotaError(self.broken) from None
        if done.returncode != 0:
            why = (done.stderr.strip() or done.stdout.strip()).splitlines()
            raise QuotaError(
                f"{' '.join(argv)} exited {done.returncode}: {why[-1] if why else 'no message'}"
            )
        tokens = done.stdout.split()
        try:
            return int(tokens[3].rstrip("*")) * 1024  # "*" marks a group over its limit
        except (IndexError, ValueError):
            raise QuotaError(f"{' '.join(argv)} printed {done.stdout.strip()[:80]!r}, "
                             "not 'filesystem used soft hard ...'") from None  # fmt: skip


class CsvQuota:
    """``group,limit[,volume]`` rows; limits in KiB."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.name = f"quota file {self.path}"
        self.limits: dict[tuple[str, str], int] = {}
        try:
            with self.path.open(newline="", encoding="utf-8") as f:
                rows = list(csv.DictReader(f))
                header = rows[0].keys() if rows else set()
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise QuotaError(f"cannot read the quota file {self.path}: {exc}") from None
        if rows and not {"group", "limit"} <= set(header):
            msg = f"{self.path}: the header must name 'group' and 'limit' (KiB), got {list(header)}"
            raise QuotaError(msg)
        for n, row in enumerate(rows, start=2):
            try:
                kib = int((row["limit"] or "").strip())
            except ValueError:
                msg = (
                    f"{self.path}:{n}: the limit must be a whole number of KiB, "
                    f"got {row['limit']!r}"
                )
                raise QuotaError(msg) from None
            volume = (row.get("volume") or "").strip()
            self.limits[(volume, (row["group"] or "").strip())] = kib * 1024

    def limit(self, volume: str, mount: str, group: str, gid: int) -> int:
        for key in ((volume, group), (volume, str(gid)), ("", group), ("", str(gid))):
            if key in self.limits:
                return self.limits[key]
        raise QuotaError(f"{self.path} has no row for group {group} (gid {gid})")


@dataclass
class Quotas:
    """Each source in turn; what could not be found is remembered for the summary."""

    sources: Sequence[Source]
    #: (volume, group, why) for every quota nobody knew
    unknown: list[tuple[str, str, str]] = field(default_factory=list)
    _cache: dict[tuple[str, int], int | None] = field(default_factory=dict)

    def limit(self, volume: str, mount: str, group: str, gid: int) -> int | None:
        key = (volume, gid)
        if key not in self._cache:
            reasons = []
            found = None
            for source in self.sources:
                try:
                    found = source.limit(volume, mount, group, gid)
                    break
                except QuotaError as exc:
                    reasons.append(f"{source.name}: {exc}")
            if found is None:
                self.unknown.append((volume, group, "; ".join(reasons) or "no quota source"))
            self._cache[key] = found
        return self._cache[key]
