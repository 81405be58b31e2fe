"""How a replica's failures are described: the exception that stops a replica, and the
traceback and source line of the stage's own code (not the engine's) that people need."""

from __future__ import annotations

import traceback
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pipeline.flow import InBatch


class ReplicaFailure(Exception):
    """User code raised and the policy says this replica stops."""

    def __init__(self, exc: BaseException, phase: str, batch: InBatch | None = None) -> None:
        self.exc = exc
        self.phase = phase
        self.batch = batch
        super().__init__(str(exc))


_ENGINE_DIR = str(Path(__file__).resolve().parent)


def user_traceback(exc: BaseException) -> str:
    """The traceback from the first frame outside the engine: what the user wrote."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        if not tb.tb_frame.f_code.co_filename.startswith(_ENGINE_DIR):
            break
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb))


def user_frame(exc: BaseException, impl_file: str | None) -> str:
    """``file:line`` of the deepest traceback frame in the stage's own file."""
    frames = traceback.extract_tb(exc.__traceback__)
    chosen = None
    for fr in frames:
        if impl_file and fr.filename == impl_file:
            chosen = fr
    if chosen is None and frames:
        chosen = frames[-1]
    return f"{chosen.filename}:{chosen.lineno}" if chosen else "?"
