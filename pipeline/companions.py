"""Monitors started with a run (``pipeline run --web``, ``--mqtt``): ``pipeline web`` and
``pipeline mqtt`` as child processes attached to the frame once it answers, each ending by
itself when the frame stops (they are stopped after a short grace if they have not)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from pipeline.rundir import INFO

log = logging.getLogger("pipeline")

#: how long a frame may take to open its control endpoint
ATTACH_TIMEOUT = 60.0
#: how long a companion may take to notice that the frame stopped
GRACE = 8.0


class Companions:
    """Commands (``pipeline`` arguments) started for the frame in ``run_dir``."""

    def __init__(self, run_dir: Path, commands: list[list[str]]) -> None:
        self.run_dir = run_dir
        self.commands = commands
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._attach, name="companions", daemon=True)

    def start(self) -> None:
        if self.commands:
            self._thread.start()

    def _attach(self) -> None:
        deadline = time.monotonic() + ATTACH_TIMEOUT
        while not self._ready():
            if self._stopping.is_set() or time.monotonic() > deadline:
                return
            time.sleep(0.1)
        for args in self.commands:
            cmd = [sys.executable, "-m", "pipeline", *args, "--frame", str(self.run_dir)]
            # its output goes to the run's terminal
            self.procs.append((f"pipeline {args[0]}", subprocess.Popen(cmd)))

    def _ready(self) -> bool:
        """This process's frame has announced its endpoints (not a killed frame's record)."""
        try:
            rec = json.loads((self.run_dir / INFO).read_text())
        except (OSError, ValueError):
            return False
        return isinstance(rec, dict) and "api" in rec and rec.get("pid") == os.getpid()

    def stop(self) -> None:
        """After the run: let each companion see the end, then make sure it has gone."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join()
        deadline = time.monotonic() + GRACE
        for name, p in self.procs:
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop by itself; stopping it", name)
                p.terminate()
                p.wait(5)
