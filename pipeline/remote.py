"""Talking to a running frame from another process: requests and the status feed.

    frame = RemoteFrame.find("wrstat")          # a name, pid or run directory; None: the only one
    frame.request("scale", stage="usage", replicas=3)
    frame.status()["stages"]["usage"]["alive"]

``request`` returns the reply's ``result`` or raises ``ControlError`` with the frame's code
and reason (``UNREACHABLE`` when the frame does not answer in time).
"""

from __future__ import annotations

import itertools
import json
import time
from typing import Any

from pipeline import registry
from pipeline.errors import ControlCode, ControlError
from pipeline.transport import ControlClient, StatusSubscriber


class RemoteFrame:
    """A running frame, from the record of ``pipeline.registry``."""

    def __init__(self, record: dict[str, Any], timeout: float = 5.0) -> None:
        self.record = record
        self.name = str(record.get("frame", "?"))
        self.pid = int(record.get("pid", 0))
        self.client = ControlClient(str(record["api"]), timeout, record.get("curve"))
        self._ids = itertools.count(1)
        self._sub: StatusSubscriber | None = None

    @classmethod
    def find(cls, which: str | None = None, timeout: float = 5.0) -> RemoteFrame:
        return cls(registry.find(which), timeout)

    def request(self, command: str, **args: Any) -> Any:
        rid = next(self._ids)
        raw = json.dumps({"id": rid, "command": command, "args": args}).encode()

        def match(reply: bytes) -> bool:
            try:
                return bool(json.loads(reply).get("id") == rid)
            except (ValueError, AttributeError):
                return False

        answer = self.client.request(raw, match)
        if answer is None:
            msg = (
                f"frame '{self.name}' (pid {self.pid}) did not answer within "
                f"{self.client.timeout:g}s; it may have stopped"
            )
            raise ControlError(ControlCode.UNREACHABLE, msg)
        reply = json.loads(answer)
        if reply.get("status") != "ok":
            code = ControlCode(int(reply.get("code", ControlCode.BAD_REQUEST)))
            raise ControlError(code, str(reply.get("reason", "refused")))
        return reply.get("result")

    def status(self) -> dict[str, Any]:
        result = self.request("status")
        assert isinstance(result, dict)
        return result

    def subscribe(self) -> StatusSubscriber:
        """The status feed (one status a second)."""
        if self._sub is None:
            self._sub = StatusSubscriber(str(self.record["status"]), self.record.get("curve"))
        return self._sub

    def wait_scaled(self, stage: str, replicas: int, timeout: float = 300.0) -> dict[str, Any]:
        """Wait until ``stage`` runs ``replicas`` replicas and no rescale is under way."""
        deadline = time.monotonic() + timeout
        while True:
            st = self.status()
            s = st["stages"][stage]
            if (
                st.get("rescale") is None
                and s["desired"] == replicas
                and (s["alive"] == replicas or s["ended"])
            ):
                return st
            if time.monotonic() > deadline:
                msg = f"stage '{stage}' did not reach {replicas} replicas in {timeout:g}s"
                raise ControlError(ControlCode.UNREACHABLE, msg)
            time.sleep(0.2)

    def close(self) -> None:
        self.client.close()
        if self._sub is not None:
            self._sub.close()
