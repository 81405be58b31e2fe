"""Generic map and filter helpers for dict records, and a keyed counter.

Use them straight from a topology::

    - name: errors-only
      run: stages.basic:select
      params: {field: level, one_of: [ERROR, CRITICAL]}
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from pipeline import Context


def select(
    item: dict[str, Any],
    ctx: Context,
    field: str,
    equals: Any = None,
    one_of: list[Any] | None = None,
    matches: str | None = None,
) -> dict[str, Any] | None:
    """Keep records whose ``field`` equals a value, is one of several, or matches a regex."""
    value = item.get(field)
    if equals is not None and value != equals:
        return None
    if one_of is not None and value not in one_of:
        return None
    if matches is not None and (not isinstance(value, str) or not re.search(matches, value)):
        return None
    return item


def project(item: dict[str, Any], ctx: Context, fields: list[str]) -> dict[str, Any]:
    """Keep only the named fields (missing ones are left out)."""
    return {f: item[f] for f in fields if f in item}


def parse_json(item: dict[str, Any], ctx: Context, field: str = "text") -> Any:
    """The JSON value held as text in ``field``."""
    try:
        return json.loads(item[field])
    except (KeyError, ValueError) as exc:
        where = f"{item.get('file', '?')}:{item.get('line', '?')}"
        msg = f"{where}: field {field!r} does not hold JSON: {exc}"
        raise ValueError(msg) from None


_WORD = re.compile(r"[\w']+")


def split(
    item: dict[str, Any], ctx: Context, field: str = "text", into: str = "word", lower: bool = True
) -> Iterator[dict[str, Any]]:
    """One record ``{into: token}`` per word in ``field``."""
    text = item[field].lower() if lower else item[field]
    for token in _WORD.findall(text):
        yield {into: token}


class CountBy:
    """Count records per value of ``field``; at the end emit ``{field: value, "count": n}``.

    Route its input by the same key (``route: {key: FIELD}``) so each replica owns its keys.
    """

    def __init__(self, field: str) -> None:
        self.field = field
        self.counts: dict[Any, int] = {}

    def process_batch(self, items: list[dict[str, Any]], ctx: Context) -> None:
        counts, field = self.counts, self.field
        for item in items:
            key = item[field]
            counts[key] = counts.get(key, 0) + 1

    def finish(self, ctx: Context) -> list[dict[str, Any]]:
        return [{self.field: k, "count": n} for k, n in sorted(self.counts.items())]

    def export_state(self, partitions: set[int], ctx: Context) -> list[list[Any]]:
        """The counts of keys in ``partitions`` (given away when the stage is scaled)."""
        out = [[k, n] for k, n in self.counts.items() if ctx.partition(k) in partitions]
        for k, _ in out:
            del self.counts[k]
        return out

    def import_state(self, state: list[list[Any]], ctx: Context) -> None:
        counts = self.counts
        for k, n in state:
            counts[k] = counts.get(k, 0) + n
