"""The verbs a running frame answers on its control endpoint, one class each.

A request is one JSON object; so is its reply::

    {"id": 7, "command": "scale", "args": {"stage": "usage", "replicas": 3}}
    {"id": 7, "status": "ok", "code": 0, "result": {"stage": "usage", "from": 2, "to": 3}}
    {"id": 8, "status": "error", "code": 4, "reason": "stage 'read' cannot be scaled: ..."}

``id`` is the client's, echoed back. ``code`` is a ``ControlCode`` (0 when ok); a failed
request always has a ``reason`` a person can act on. The same verbs and replies are used by
``pipeline status|scale|pause|resume|stop|kill``, the monitors and the MQTT bridge.

The endpoint is ``ipc://<sockets>/api``, an owner-only unix socket (its path is in
``<run_dir>/frame.json``); with ``transport: tcp`` it is a tcp port that requires CURVE keys
(``pipeline.security``).
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any, ClassVar

from pipeline.errors import ControlCode, ControlError
from pipeline.scaling import Rescale, check_scalable

if TYPE_CHECKING:
    from pipeline.supervisor import Supervisor

log = logging.getLogger("pipeline")


class Command:
    """One verb. ``changes`` says whether it changes the frame (the web monitor and the
    MQTT bridge accept those only with the token or the shared secret)."""

    name: ClassVar[str]
    changes: ClassVar[bool] = True
    #: one line for ``commands`` and ``--help``
    summary: ClassVar[str]

    def execute(self, sup: Supervisor, args: dict[str, Any]) -> Any:
        raise NotImplementedError

    @staticmethod
    def running(sup: Supervisor) -> None:
        if sup.draining or sup.failed:
            raise ControlError(ControlCode.NOT_RUNNING, "the frame is stopping")


class Status(Command):
    """``status`` -> the frame's status (``pipeline.status``): state, uptime, the rescale
    under way, and per stage replicas, records, rates, backlog, busy, CPU, memory, batch
    latency p50/p99, errors and progress. CLI: ``pipeline status [--json]``."""

    name = "status"
    changes = False
    summary = "the frame's state and every stage's live figures"

    def execute(self, sup: Supervisor, args: dict[str, Any]) -> Any:
        return sup.current_status()


class Scale(Command):
    """``scale {"stage": S, "replicas": N}`` -> ``{"stage", "from", "to"}`` at once; the
    change goes on in the background (``status.rescale`` shows its phase, and the stage's
    ``desired`` and ``alive`` counts reach N when it is done). Refused with a reason for a
    stage declared ``scalable: false``, a source, a broadcast stage, a keyed stage that
    cannot hand its state over, while another scale is under way, or once the stage or the
    frame is ending. CLI: ``pipeline scale STAGE N [--wait]``."""

    name = "scale"
    summary = "change a stage's replica count while data flows"

    def execute(self, sup: Supervisor, args: dict[str, Any]) -> Any:
        stage = args.get("stage")
        if not isinstance(stage, str):
            raise ControlError(ControlCode.BAD_REQUEST, "scale needs 'stage' (a stage name)")
        if "replicas" not in args:
            raise ControlError(ControlCode.BAD_REQUEST, "scale needs 'replicas' (a number)")
        n = args["replicas"]
        st = check_scalable(sup, stage, n)
        before = st.desired
        if n != before:
            sup.rescale = Rescale(sup, st, n)
        return {"stage": stage, "from": before, "to": n}


class Pause(Command):
    """``pause`` -> ``{"paused": true}``: sources stop emitting; what is in flight drains
    through the other stages. CLI: ``pipeline pause``."""

    name = "pause"
    summary = "sources stop emitting; in-flight work drains"

    def execute(self, sup: Supervisor, args: dict[str, Any]) -> Any:
        self.running(sup)
        if not sup.paused:
            log.warning("paused: sources hold back until resumed")
        sup.set_paused(True)
        return {"paused": True}


class Resume(Command):
    """``resume`` -> ``{"paused": false}``: sources emit again. CLI: ``pipeline resume``."""

    name = "resume"
    summary = "sources emit again"

    def execute(self, sup: Supervisor, args: dict[str, Any]) -> Any:
        self.running(sup)
        if sup.paused:
            log.warning("resumed")
        sup.set_paused(False)
        return {"paused": False}


class Stop(Command):
    """``stop`` -> ``{"stopping": true}``: a graceful drain, as on Ctrl-C: sources stop,
    everything in flight is processed, every stage finishes, reports are written; the run
    exits 0 if nothing was lost. CLI: ``pipeline stop``."""

    name = "stop"
    summary = "graceful stop: sources stop and everything in flight drains"

    def execute(self, sup: Supervisor, args: dict[str, Any]) -> Any:
        sup.stopped_by = sup.stopped_by or "a stop request"
        sup.stop("stop requested")
        return {"stopping": True}


class Kill(Command):
    """``kill`` -> ``{"killed": true}``: stop at once; work in flight is lost and the run
    exits 1 saying so. CLI: ``pipeline kill``."""

    name = "kill"
    summary = "stop at once (work in flight is lost; the run exits 1)"

    def execute(self, sup: Supervisor, args: dict[str, Any]) -> Any:
        sup.stopped_by = "a kill request"
        sup.fail("killed by request: stopped at once")
        return {"killed": True}


class Commands(Command):
    """``commands`` -> ``{verb: {"summary", "changes"}}``: what this frame answers."""

    name = "commands"
    changes = False
    summary = "the verbs this endpoint answers"

    def execute(self, sup: Supervisor, args: dict[str, Any]) -> Any:
        return {n: {"summary": c.summary, "changes": c.changes} for n, c in COMMANDS.items()}


COMMANDS: dict[str, Command] = {
    c.name: c for c in (Status(), Scale(), Pause(), Resume(), Stop(), Kill(), Commands())
}


def parse(raw: bytes) -> tuple[Any, str, dict[str, Any]]:
    """``(id, command, args)`` of a request; ``ControlError`` if it is malformed."""
    try:
        req = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ControlError(ControlCode.BAD_REQUEST, f"the request is not JSON: {exc}") from None
    if not isinstance(req, dict):
        msg = 'a request is a JSON object: {"id": 1, "command": "status", "args": {}}'
        raise ControlError(ControlCode.BAD_REQUEST, msg)
    command = req.get("command")
    args = req.get("args", {})
    if not isinstance(command, str):
        raise ControlError(ControlCode.BAD_REQUEST, "the request has no 'command'")
    if not isinstance(args, dict):
        raise ControlError(ControlCode.BAD_REQUEST, "'args' must be a JSON object")
    return req.get("id"), command, args


def execute(sup: Supervisor, command: str, args: dict[str, Any]) -> Any:
    """Carry out one verb; ``ControlError`` if it cannot be done."""
    verb = COMMANDS.get(command)
    if verb is None:
        known = ", ".join(COMMANDS)
        msg = f"unknown command {command!r} (commands: {known})"
        raise ControlError(ControlCode.UNKNOWN_COMMAND, msg)
    return verb.execute(sup, args)


def ok(rid: Any, result: Any) -> dict[str, Any]:
    return {"id": rid, "status": "ok", "code": int(ControlCode.OK), "result": result}


def error(rid: Any, exc: ControlError) -> dict[str, Any]:
    return {"id": rid, "status": "error", "code": int(exc.code), "reason": exc.reason}


def handle(sup: Supervisor, raw: bytes) -> bytes:
    """The reply to one raw request."""
    rid: Any = None
    try:
        rid, command, args = parse(raw)
        reply = ok(rid, execute(sup, command, args))
    except ControlError as exc:
        reply = error(rid, exc)
    return json.dumps(reply).encode()
