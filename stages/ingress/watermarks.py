"""Per collector key, the time up to which its data has been delivered.

As Red Hat's analytics collector keeps them (``last_gathered_entries``), with its two
flaws fixed:

* a key advances only when the tarball holding its collection is acknowledged, and never
  past the start of a window of that key that failed (the collector raised) or is still
  waiting in the outbox: later windows that did arrive are gathered again, a failed one is
  never skipped;
* a key with a failed window loses its ``<key>_full`` entry, so its next gathering is a
  full one again (the reference meant to, but removed it from the wrong table).

``since(key, until)`` says where the next window of a key starts: after what was
delivered or is already packaged and waiting (so a tarball waiting in the outbox is not
gathered a second time), at the start of its oldest failed window, and never before
``until`` minus the horizon (4 weeks).

>>> import datetime as dt
>>> t = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
>>> w = Watermarks({})
>>> w.since("usage", t) == t - HORIZON
True
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from stages.outfiles import write_atomically

HORIZON = dt.timedelta(weeks=4)


def _time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


def _text(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).isoformat()


class Watermarks:
    """The state: ``entries`` (key -> delivered up to; ``<key>_full`` -> last full
    gathering), ``failed`` (key -> start of its oldest failed window) and ``last_gather``."""

    def __init__(self, data: Mapping[str, Any], path: Path | None = None) -> None:
        self.path = path
        self.entries: dict[str, dt.datetime] = {
            k: _time(v) for k, v in dict(data.get("entries", {})).items()
        }
        self.failed: dict[str, dt.datetime] = {
            k: _time(v) for k, v in dict(data.get("failed", {})).items()
        }
        last = data.get("last_gather")
        self.last_gather: dt.datetime | None = _time(last) if last else None

    @classmethod
    def load(cls, path: Path) -> Watermarks:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            data = {}
        except (OSError, ValueError) as exc:
            msg = (f"{path}: not a readable shipping state ({exc}); fix it, or delete it to "
                   "gather the last 4 weeks again")  # fmt: skip
            raise ValueError(msg) from None
        return cls(data, path)

    def save(self) -> None:
        assert self.path is not None
        data = {
            "entries": {k: _text(v) for k, v in sorted(self.entries.items())},
            "failed": {k: _text(v) for k, v in sorted(self.failed.items())},
            "last_gather": _text(self.last_gather) if self.last_gather else None,
        }
        write_atomically(self.path, json.dumps(data, indent=1))

    def since(
        self, key: str, until: dt.datetime, waiting: Iterable[Mapping[str, Any]] = ()
    ) -> dt.datetime:
        """Where the next window of ``key`` starts (see the module docstring); ``waiting``:
        the collections of the tarballs in the outbox."""
        start = self.entries.get(key) or self.last_gather or until - HORIZON
        for c in waiting:
            if c["key"] == key and c["status"] == "ok":
                start = max(start, _time(c["until"]))
        if key in self.failed:
            start = min(start, self.failed[key])
        return max(start, until - HORIZON)

    def gathered(self, collections: Iterable[Mapping[str, Any]]) -> None:
        """Note a gathering's failed windows (before anything is shipped): a key's failure
        holds it back, and a key gathered again from its failure is clear of it."""
        for c in collections:
            key, since = c["key"], _time(c["since"])
            if c["status"] == "failed":
                old = self.failed.get(key)
                self.failed[key] = since if old is None else min(old, since)
                self.entries.pop(f"{key}_full", None)
            elif c["status"] in ("ok", "empty") and since <= self.failed.get(key, since):
                self.failed.pop(key, None)

    def delivered(
        self,
        collections: Iterable[Mapping[str, Any]],
        waiting: Iterable[Mapping[str, Any]] = (),
        at: dt.datetime | None = None,
    ) -> list[str]:
        """Advance the keys of an acknowledged tarball's collections; ``waiting``: the
        collections still in the outbox, which hold their keys back. The keys moved."""
        held: dict[str, dt.datetime] = dict(self.failed)
        for c in waiting:
            since = _time(c["since"])
            held[c["key"]] = min(held.get(c["key"], since), since)
        moved = []
        for c in collections:
            if c["status"] not in ("ok", "empty"):
                continue
            key, until = c["key"], _time(c["until"])
            if key in held and until > held[key]:
                continue
            if until > self.entries.get(key, until - dt.timedelta(microseconds=1)):
                self.entries[key] = until
                moved.append(key)
            if c.get("full") and key not in self.failed:
                self.entries[f"{key}_full"] = at or dt.datetime.now(dt.UTC)
        return moved
