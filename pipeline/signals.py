"""The signals that stop a run (SIGINT, SIGTERM, SIGHUP), caught as data: the supervisor's
poll wakes on them (a self-pipe) and it takes them one at a time between steps."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from types import FrameType, TracebackType

#: SIGHUP too: a closed terminal or ssh session drains the run as Ctrl-C would
HANDLED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class StopSignals:
    """While entered (on the main thread), the handled signals are queued instead of
    acted on; ``fd`` becomes readable when one arrives."""

    def __init__(self) -> None:
        self.fd: int | None = None
        self._w: int | None = None
        self._queue: list[int] = []
        self._old: dict[int, object] = {}
        self._old_fd = -1

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is not threading.main_thread():
            return self  # only the main thread may handle signals; a frame on a thread
        r, w = os.pipe()
        os.set_blocking(r, False)
        os.set_blocking(w, False)
        self.fd, self._w = r, w

        def on_signal(signum: int, frame: FrameType | None) -> None:
            self._queue.append(signum)

        self._old = {s: signal.signal(s, on_signal) for s in HANDLED}
        self._old_fd = signal.set_wakeup_fd(w)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.fd is None or self._w is None:
            return
        signal.set_wakeup_fd(self._old_fd)
        for s, h in self._old.items():
            signal.signal(s, h)  # type: ignore[arg-type]
        os.close(self.fd)
        os.close(self._w)
        self.fd = self._w = None

    def take(self) -> list[str]:
        """The names of the signals received since the last call, in order."""
        if self.fd is not None:
            with contextlib.suppress(BlockingIOError):
                os.read(self.fd, 512)
        names = [signal.Signals(s).name for s in self._queue]
        self._queue.clear()
        return names
