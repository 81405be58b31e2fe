"""Base directories: where a path's usage is reported.

By default a path is cut to 4 components; to 5 under
``/lustre/scratchNNN/(humgen|hgi|tol|pam|opentargets)``; and one more where one of those
components is ``mdtN`` (wrstat's own rules, as lurge's reports use them). The rules are
configurable: a list of ``{match: REGEX, depth: N}``, tried in order, each regex matched
against the path cut to that depth, the first match deciding; and ``mdt`` (a regex for a
component that adds one level, or null).

Alternatively a basedirs file (``gid<TAB>path`` per line, as wrstat's basedir command and
lurge used) replaces the rules: an entry belongs to the longest listed path of its gid that
contains it. Either way matching is by whole components (``/p1`` never contains ``/p10``),
and an entry in no base directory is reported on its volume's own row.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_RULES = (
    {"match": r"^/lustre/scratch[0-9]+/(humgen|hgi|tol|pam|opentargets)/", "depth": 5},
    {"match": r"", "depth": 4},
)
DEFAULT_MDT = r"^mdt[0-9]+$"


class BaseDirError(ValueError):
    """The base-directory settings or the basedirs file are not valid."""


@dataclass(frozen=True)
class Rule:
    pattern: re.Pattern[str]
    depth: int


def _text(path: bytes) -> str:
    return path.decode("utf-8", "surrogateescape")


class Rules:
    """Base-directory depth decided by rules, per path prefix (see the module docstring)."""

    def __init__(
        self, rules: Sequence[Mapping[str, Any]] = DEFAULT_RULES, mdt: str | None = DEFAULT_MDT
    ) -> None:
        parsed = []
        for i, rule in enumerate(rules, 1):
            if not isinstance(rule, Mapping) or set(rule) != {"match", "depth"}:
                msg = f"basedirs rule {i} must be {{match: REGEX, depth: N}}, got {rule!r}"
                raise BaseDirError(msg)
            depth = rule["depth"]
            if isinstance(depth, bool) or not isinstance(depth, int) or not 1 <= depth <= 24:
                msg = f"basedirs rule {i}: depth must be a whole number from 1 to 24, got {depth!r}"
                raise BaseDirError(msg)
            try:
                parsed.append(Rule(re.compile(str(rule["match"])), depth))
            except re.error as exc:
                msg = f"basedirs rule {i}: {rule['match']!r} is not a valid regex: {exc}"
                raise BaseDirError(msg) from None
        if not parsed:
            raise BaseDirError("basedirs rules are empty: give at least one {match, depth}")
        try:
            self.mdt = re.compile(mdt) if mdt else None
        except re.error as exc:
            raise BaseDirError(f"basedirs mdt: {mdt!r} is not a valid regex: {exc}") from None
        self.rules = tuple(parsed)
        #: the prefix depth every rule can be decided on
        self.probe_depth = max(r.depth for r in parsed)

    def depth(self, prefix: bytes) -> int:
        """The base-directory depth of paths starting with ``prefix`` (a path cut to
        ``probe_depth`` components), or -1 when no rule matches."""
        comps = [c for c in _text(prefix).split("/")[1:] if c != ""]
        for rule in self.rules:
            cand = "/" + "/".join(comps[: rule.depth])
            if rule.pattern.match(cand if len(comps) < rule.depth else cand + "/"):
                extra = 1 if self.mdt and any(self.mdt.match(c) for c in comps[: rule.depth]) else 0
                return rule.depth + extra
        return -1


class Listed:
    """Base directories listed in a basedirs file: ``gid<TAB>path`` lines."""

    def __init__(self, pairs: Iterable[tuple[int, bytes]]) -> None:
        from stages.wrstat.tables import Rows, Strings, row_of  # noqa: PLC0415 - compiled: load where used

        self.paths = Strings()
        self.allowed = Rows([0])
        depths: set[int] = set()
        for gid, listed in pairs:
            path = listed.rstrip(b"/") or b"/"
            sid = self.paths.add(path)
            self.allowed.reserve(1)
            row_of(self.allowed.keys, self.allowed.slots, self.allowed.state, sid, gid, 0, True)
            depths.add(0 if path == b"/" else path.count(b"/"))
        #: depths to try, longest first
        self.depths = np.array(sorted(depths, reverse=True), dtype=np.int64)

    @classmethod
    def read(cls, file: str | Path) -> Listed:
        pairs = []
        with open(file, "rb") as f:
            for n, raw in enumerate(f, 1):
                line = raw.rstrip(b"\r\n")
                if not line.strip():
                    continue
                gid, sep, path = line.partition(b"\t")
                if not sep or not gid.strip().isdigit() or not path.startswith(b"/"):
                    msg = (
                        f"{file}:{n}: expected 'gid<TAB>/absolute/path', found "
                        f"{line.decode('utf-8', 'replace')!r}"
                    )
                    raise BaseDirError(msg)
                pairs.append((int(gid), path))
        return cls(pairs)
