"""What the tests' own servers (MariaDB, slapd) share: finding the installed binary, and
stopping the process, also as a context manager."""

from __future__ import annotations

import shutil
import subprocess
from types import TracebackType
from typing import Self


def binary(name: str, package: str) -> str:
    """The installed program ``name``; a message naming its Debian package if missing."""
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin")
    if found is None:
        msg = f"{name} is not installed: make test installs it (apt-get install {package})"
        raise RuntimeError(msg)
    return found


class ServerProcess:
    """A server the test started (``start`` sets ``proc``); ``stop`` ends it for good."""

    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None and self.proc.stderr:
            self.proc.stderr.close()
        self.proc = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
