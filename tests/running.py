"""A frame running on a thread of the test process, with a control client to it, and a
registry of running frames private to the test."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import ClassVar

from pipeline.errors import ControlError
from pipeline.remote import RemoteFrame
from pipeline.report import RunReport
from pipeline.supervisor import Supervisor
from tests.conftest import assert_clean, make_topology


class Running:
    """A frame run by a supervisor on a thread, and a client to it."""

    #: frames started and not yet waited for (stopped at the end of a failed test)
    unfinished: ClassVar[list[Running]] = []

    def __init__(self, text: str, run_dir: Path) -> None:
        Running.unfinished.append(self)
        self.run_dir = run_dir
        self.sup = Supervisor(make_topology(text, run_dir))
        self.report: RunReport | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while True:
            try:
                self.frame = RemoteFrame.find(str(run_dir), timeout=5)
                break
            except ControlError:
                if time.monotonic() > deadline or not self.thread.is_alive():
                    raise
                time.sleep(0.05)

    def _run(self) -> None:
        self.report = self.sup.run()

    @classmethod
    def stop_all(cls) -> None:
        """Stop at once every frame a test left running (it failed before its end)."""
        while cls.unfinished:
            run = cls.unfinished.pop()
            if run.thread.is_alive():
                run.sup.fail("the test ended")
                run.thread.join(30)
            if hasattr(run, "frame"):
                run.frame.close()  # its sockets, before the garbage collector finds them

    def wait(self, timeout: float = 120) -> RunReport:
        if self in Running.unfinished:
            Running.unfinished.remove(self)
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the frame did not end"
        self.frame.close()
        assert self.report is not None
        assert_clean(self.run_dir)
        return self.report
