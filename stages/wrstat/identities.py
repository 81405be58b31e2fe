"""Who a gid and a uid are: group names and PIs, user names.

Backends, asked once per run for every id the run saw (``lookup``), then cached:

* ``SystemIdentities`` (the default): the machine's group and password databases (NSS,
  so whatever it is configured with: files, sssd, LDAP). They know no PIs.
* ``FileIdentities``: a tab-separated mapping file, for sites whose directory cannot be
  reached from where reports are made, or to name PIs by hand::

      # kind   id     name     PI (groups only; optional)
      group    1313   hgi      Smith
      user     5678   jdoe

* an LDAP directory (``stages.wrstat.ldap``), as lurge read it.

A backend answers what it knows; ``Resolver`` asks the chosen one first and the system
databases for the rest (all of it, with a warning, when the chosen one cannot be reached),
and names an id nobody knows by its number, as ``ls -n`` would.
"""

from __future__ import annotations

import grp
import pwd
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

#: what the reports show for an unknown PI
NO_PI = "-"


@dataclass(frozen=True)
class Group:
    name: str
    pi: str = NO_PI


class Backend(Protocol):
    """Answers for the ids it knows; leaves the others out."""

    name: str

    def groups(self, gids: Iterable[int]) -> dict[int, Group]: ...

    def users(self, uids: Iterable[int]) -> dict[int, str]: ...


class SystemIdentities:
    """The machine's group and password databases."""

    name = "system databases"

    def groups(self, gids: Iterable[int]) -> dict[int, Group]:
        out = {}
        for gid in gids:
            try:
                out[gid] = Group(grp.getgrgid(gid).gr_name)
            except (KeyError, OverflowError):
                continue
        return out

    def users(self, uids: Iterable[int]) -> dict[int, str]:
        out = {}
        for uid in uids:
            try:
                out[uid] = pwd.getpwuid(uid).pw_name
            except (KeyError, OverflowError):
                continue
        return out


class IdentitiesUnavailable(Exception):
    """A backend cannot answer at all (a directory that cannot be reached); says why."""


class IdentityFileError(ValueError):
    """A mapping file line that cannot be used; says which and how to fix it."""


class FileIdentities:
    """A tab-separated mapping file (see the module docstring), read once."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.name = f"mapping file {self.path}"
        self._groups: dict[int, Group] = {}
        self._users: dict[int, str] = {}
        try:
            text = self.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            msg = f"cannot read the identity mapping file {self.path}: {exc}"
            raise IdentityFileError(msg) from None
        for n, line in enumerate(text.splitlines(), start=1):
            if line.strip() and not line.lstrip().startswith("#"):
                self._add(n, line)

    def _add(self, n: int, line: str) -> None:
        where = f"{self.path}:{n}"
        cells = line.split("\t")
        kind = cells[0].strip()
        if kind not in ("group", "user") or len(cells) < 3:
            msg = (
                f"{where}: expected 'group<TAB>gid<TAB>name[<TAB>PI]' or "
                f"'user<TAB>uid<TAB>name', got {line!r}"
            )
            raise IdentityFileError(msg)
        try:
            number = int(cells[1])
        except ValueError:
            msg = f"{where}: the {kind} id must be a number, got {cells[1]!r}"
            raise IdentityFileError(msg) from None
        name = cells[2].strip()
        if not name:
            raise IdentityFileError(f"{where}: the {kind} {number} has no name")
        if kind == "group":
            pi = cells[3].strip() if len(cells) > 3 and cells[3].strip() else NO_PI
            self._groups[number] = Group(name, pi)
        else:
            self._users[number] = name

    def groups(self, gids: Iterable[int]) -> dict[int, Group]:
        return {g: self._groups[g] for g in gids if g in self._groups}

    def users(self, uids: Iterable[int]) -> dict[int, str]:
        return {u: self._users[u] for u in uids if u in self._users}


class Resolver:
    """The chosen backend first, then the system databases; an unknown id is named by its
    number. ``misses`` counts ids the chosen backend did not know, for the run summary."""

    def __init__(self, backend: Backend | None = None) -> None:
        self.backend = backend or SystemIdentities()
        self.system = SystemIdentities()
        self.misses = 0
        #: what went wrong with the chosen backend, for the run summary
        self.warnings: list[str] = []

    def lookup(
        self, gids: Iterable[int], uids: Iterable[int]
    ) -> tuple[dict[int, Group], dict[int, str]]:
        gids, uids = sorted(set(gids)), sorted(set(uids))
        try:
            groups = self.backend.groups(gids)
            users = self.backend.users(uids)
        except IdentitiesUnavailable as exc:
            self.warnings.append(f"{exc}; names come from the system databases instead")
            groups, users = {}, {}
        missing_g = [g for g in gids if g not in groups]
        missing_u = [u for u in uids if u not in users]
        if not isinstance(self.backend, SystemIdentities):
            self.misses += len(missing_g) + len(missing_u)
            groups.update(self.system.groups(missing_g))
            users.update(self.system.users(missing_u))
        for g in gids:
            groups.setdefault(g, Group(str(g)))
        for u in uids:
            users.setdefault(u, str(u))
        return groups, users
