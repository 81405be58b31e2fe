"""The one exception hierarchy of the engine, and the named exit codes.

Every error that reaches a user says where (file and line, stage, replica, or the user
function), what was expected and what was found, and what to do about it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class ExitCode(enum.IntEnum):
    """Exit codes of ``pipeline`` commands (also ``RunReport.exit_code``)."""

    OK = 0
    #: a stage failed, data was lost, or the accounting did not balance
    FAILED = 1
    #: invalid command line or invalid topology; nothing was started
    USAGE = 2
    #: the run finished and wrote its results, but some input could not be read
    INCOMPLETE_INPUT = 3


class PipelineError(Exception):
    """Base of every error the engine raises on purpose."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a topology: where it is and what to do."""

    message: str
    file: str | None = None
    line: int | None = None
    stage: str | None = None

    def __str__(self) -> str:
        where = ""
        if self.file:
            where = self.file if self.line is None else f"{self.file}:{self.line}"
            where += ": "
        who = f"stage '{self.stage}': " if self.stage else ""
        return f"{where}{who}{self.message}"


class TopologyError(PipelineError):
    """The topology is invalid; every problem found is listed, nothing was started."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = list(problems)
        super().__init__(str(self))

    def __str__(self) -> str:
        n = len(self.problems)
        head = "invalid topology" if n == 1 else f"invalid topology ({n} problems)"
        return head + ":\n" + "\n".join(f"  {p}" for p in self.problems)


class UsageError(PipelineError):
    """The command line or an API call was used wrongly."""


class WireError(PipelineError):
    """A stage emitted something the wire format cannot carry."""


class StageError(PipelineError):
    """User code of a stage raised; the original exception is chained as ``__cause__``."""

    def __init__(self, stage: str, replica: int, where: str, message: str) -> None:
        self.stage = stage
        self.replica = replica
        self.where = where
        super().__init__(f"stage '{stage}' replica {replica} failed in {where}: {message}")


class RunFailed(PipelineError):
    """A run ended with a non-zero exit code; ``report`` holds what happened."""

    def __init__(self, message: str, report: object) -> None:
        self.report = report
        super().__init__(message)


class ControlCode(enum.IntEnum):
    """Why a control request failed (``code`` in a reply; 0 in every successful one)."""

    OK = 0
    #: the request is malformed: not JSON, no command, a missing or wrong argument
    BAD_REQUEST = 1
    UNKNOWN_COMMAND = 2
    NO_SUCH_STAGE = 3
    #: the stage or the frame cannot do it (not scalable, a source, ...); the reason says why
    REFUSED = 4
    #: another operation is under way (a scale); try again when it is done
    CONFLICT = 5
    #: the frame is stopping or has stopped
    NOT_RUNNING = 6
    #: a web or MQTT request without the right token or secret
    UNAUTHORIZED = 7
    #: no answer in time, or no frame to ask
    UNREACHABLE = 8


class ControlError(PipelineError):
    """A control request that cannot be carried out: ``code`` and a reason people can act
    on."""

    def __init__(self, code: ControlCode, reason: str) -> None:
        self.code = code
        self.reason = reason
        super().__init__(reason)


class EndOfStream(Exception):
    """Raised by a MASS-style source to end its stream, and by ``sockets.receive()``
    when a stage's input has ended.

    >>> def numbers(sockets):
    ...     if sockets.sent >= 3:
    ...         raise EndOfStream
    ...     sockets.send(sockets.sent)
    """
