"""The outbox: tarballs wait here until the ingress service has acknowledged them.

Layout under the outbox directory:

* ``pending/<name>.tar.gz`` and ``pending/<name>.json``: a tarball and what it holds (its
  SHA-256, size, and each collection's key, window and status). The description is written
  first and the tarball moved in after it, both atomically, so a tarball in ``pending`` is
  always described; a description left without its tarball (a crash between the two) is
  removed, and its window gathered again.
* ``refused/``: tarballs the service refused for good (a 4xx), with its answer, for a
  person to look at; they are not sent again.
* ``sent.jsonl``: one line per delivered tarball (name, SHA-256, HTTP status, when); the
  tarball itself is deleted once delivered.
* ``.lock``: held (``flock``, not waited for) by the one gathering that runs at a time.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stages.outfiles import fsync_dir, write_atomically


class Busy(Exception):
    """Another gathering holds the outbox."""


@dataclass(frozen=True)
class Waiting:
    """A tarball in the outbox and its description."""

    path: Path
    meta: dict[str, Any]

    @property
    def sha256(self) -> str:
        return str(self.meta["sha256"])


class Outbox:
    """The outbox under ``root`` (see the module docstring)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.pending_dir = self.root / "pending"
        self.refused_dir = self.root / "refused"
        self.work = self.root / "work"  # tarballs being built: same file system as pending

    def _make(self) -> None:
        for d in (self.pending_dir, self.refused_dir, self.work):
            d.mkdir(parents=True, exist_ok=True)

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the outbox for one gathering; ``Busy`` at once if another holds it."""
        self._make()
        with (self.root / ".lock").open("a") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                msg = (f"another gathering is running on the outbox {self.root} (it holds "
                       f"{self.root / '.lock'}); this one does nothing")  # fmt: skip
                raise Busy(msg) from None
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def put(self, tarball: Path, meta: dict[str, Any]) -> Waiting:
        """Move a built tarball in, described by ``meta``."""
        self._make()
        meta = {**meta, "name": tarball.name, "order": time.time_ns(),
                "queued": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}  # fmt: skip
        target = self.pending_dir / tarball.name
        n = 0
        while target.exists() or _described(target).exists():  # a name taken by one waiting
            n += 1
            target = self.pending_dir / tarball.name.replace(".tar.gz", f".{n}.tar.gz")
        meta["name"] = target.name
        write_atomically(_described(target), json.dumps(meta, indent=1, sort_keys=True))
        os.replace(tarball, target)
        fsync_dir(self.pending_dir)
        return Waiting(target, meta)

    def pending(self) -> list[Waiting]:
        """The tarballs waiting, oldest first; descriptions left without a tarball removed."""
        found: list[Waiting] = []
        if not self.pending_dir.is_dir():
            return found
        for desc in sorted(self.pending_dir.glob("*.tar.gz.json")):
            tarball = desc.with_suffix("")
            if not tarball.exists():
                desc.unlink()
                continue
            found.append(Waiting(tarball, json.loads(desc.read_text(encoding="utf-8"))))
        return sorted(found, key=lambda w: (int(w.meta.get("order", 0)), w.path.name))

    def delivered(self, w: Waiting, status: int | None) -> None:
        """A tarball the service has: logged, then removed."""
        line = {"name": w.path.name, "sha256": w.sha256, "status": status,
                "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}  # fmt: skip
        with (self.root / "sent.jsonl").open("a", encoding="utf-8") as f:
            f.write(json.dumps(line, sort_keys=True) + "\n")
            f.flush()
            os.fsync(f.fileno())
        w.path.unlink(missing_ok=True)
        _described(w.path).unlink(missing_ok=True)

    def refused(self, w: Waiting, status: int | None, body: str) -> Path:
        """A tarball the service will not take: kept in ``refused/`` with its answer."""
        target = self.refused_dir / w.path.name
        meta = {**w.meta, "refused": {"status": status, "body": body[:2000]}}
        write_atomically(_described(target), json.dumps(meta, indent=1, sort_keys=True))
        shutil.move(w.path, target)
        _described(w.path).unlink(missing_ok=True)
        return target

    def sent(self) -> list[dict[str, Any]]:
        """Every delivery logged, oldest first."""
        path = self.root / "sent.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def _described(tarball: Path) -> Path:
    return tarball.with_name(tarball.name + ".json")
