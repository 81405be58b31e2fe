"""The ``usage`` stage: parse chunks of stats lines and tally them; replicate it freely.

Each replica keeps running totals per (stats file, gid, base directory, sub-directory) and
per (stats file, uid, gid), and sends them on at the end of the stream; ``report`` adds up the
replicas' totals, so the reports are the same with one replica or many. Reject records, and
the reader's notes about each file, are passed on to ``report`` as they come.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pipeline import Context
from stages.wrstat.basedirs import DEFAULT_MDT, DEFAULT_RULES, BaseDirError, Listed, Rules

if TYPE_CHECKING:
    from stages.wrstat.tally import Tally

#: the compiled kernels, loaded once in the process workers are forked from
WORKER_PRELOAD = ["stages.wrstat.tally:warm"]


def base_dirs(basedirs: Mapping[str, Any] | None, basedirs_file: str | None) -> Rules | Listed:
    """The base-directory classifier from a stage's params."""
    if basedirs_file:
        if basedirs:
            raise BaseDirError("give basedirs rules or a basedirs_file, not both")
        return Listed.read(basedirs_file)
    settings = dict(basedirs or {})
    unknown = set(settings) - {"rules", "mdt"}
    if unknown:
        raise BaseDirError(f"unknown basedirs setting(s) {sorted(unknown)}: use rules and mdt")
    return Rules(settings.get("rules", DEFAULT_RULES), settings.get("mdt", DEFAULT_MDT))


class Usage:
    """Parse chunks from ``read`` and tally usage (see the module docstring).

    ``basedirs``: ``{rules: [{match, depth}, ...], mdt: REGEX}`` (default: wrstat's rules);
    ``basedirs_file``: a ``gid<TAB>path`` file that replaces the rules.
    """

    def __init__(
        self, basedirs: Mapping[str, Any] | None = None, basedirs_file: str | None = None
    ) -> None:
        from stages.wrstat.tally import Tally  # noqa: PLC0415 - compiled: load where used

        self.tally: Tally = Tally(base_dirs(basedirs, basedirs_file))

    def process(self, item: dict[str, Any], ctx: Context) -> Any:
        if item.get("kind") != "chunk":
            return item  # the reader's notes and rejects go on to the report
        bad = self.tally.add(item["data"], item["encoding"], item["ncols"], item["snapshot"],
                             item["file"], item["line"])  # fmt: skip
        return bad or None

    def finish(self, ctx: Context) -> dict[str, Any]:
        return self.tally.partial()
