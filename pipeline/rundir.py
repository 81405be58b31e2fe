"""The run directory: one running frame at a time, and no leftovers from a killed one.

``<run_dir>/frame.lock`` is held (``flock``) for the life of a frame, so a second frame on the
same run directory is refused, and a lock file whose holder died is simply taken over: the
kernel drops the lock with the process. The frame's sockets live in a directory recorded in
``<run_dir>/frame.json``; a new frame removes what a killed one left there before it starts.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from pipeline.errors import UsageError
from pipeline.transport import prepare_socket_dir, remove_socket_dir, socket_dir

LOCK = "frame.lock"
INFO = "frame.json"


def new_run_id() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + f"-{os.getpid()}"


@dataclass
class RunDir:
    path: Path
    run_id: str = field(default_factory=new_run_id)
    sockets: Path = field(init=False)
    _lock: IO[str] | None = None

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        self.sockets = socket_dir(self.path)

    def acquire(self, frame: str) -> None:
        """Lock the run directory, clean up after a killed frame, prepare the sockets."""
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            msg = f"cannot create the run directory {self.path}: {exc}; choose a writable run_dir"
            raise UsageError(msg) from None
        lock = (self.path / LOCK).open("a+")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            other = self.info().get("pid", "?")
            msg = (
                f"another frame (pid {other}) is running in {self.path}; stop it, or give "
                "this run its own run_dir"
            )
            raise UsageError(msg) from None
        self._lock = lock
        stale = self.info().get("sockets")
        if stale and Path(str(stale)) != self.sockets:
            remove_socket_dir(Path(str(stale)))
        prepare_socket_dir(self.sockets)
        (self.path / INFO).write_text(
            json.dumps(
                {
                    "frame": frame,
                    "pid": os.getpid(),
                    "run_id": self.run_id,
                    "sockets": str(self.sockets),
                }
            )
        )

    def announce(self, extra: dict[str, object]) -> dict[str, object]:
        """Add ``extra`` (endpoints, ...) to ``frame.json``; the whole record is returned."""
        record = {**self.info(), **extra}
        tmp = self.path / (INFO + ".tmp")
        tmp.write_text(json.dumps(record))
        tmp.replace(self.path / INFO)
        return record

    def info(self) -> dict[str, object]:
        try:
            data = json.loads((self.path / INFO).read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def release(self) -> None:
        """Remove the sockets and the frame record, and unlock."""
        remove_socket_dir(self.sockets)
        with contextlib.suppress(OSError):
            (self.path / INFO).unlink()
        if self._lock is not None:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None
