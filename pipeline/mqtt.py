"""``pipeline mqtt``: publish a running frame's status to an MQTT broker, and optionally take
control requests from it.

The bridge follows the status the frame publishes once a second and, for each one, publishes

* ``<prefix>/<frame>/<stage>``: that stage's figures (records, rates, backlog, busy, replicas
  alive and desired, batch latency p50/p99, errors, CPU, memory, progress), at ``--qos``;
* ``<prefix>/<frame>/status``: the frame's state, uptime, rescale under way, errors and stage
  names, retained at QoS 1. When the frame stops (or the bridge does) it becomes
  ``{"state": "gone", ...}``; the broker publishes the same as the bridge's last will if the
  bridge vanishes without saying so.

A stage named ``status`` or ``control`` is published as ``<prefix>/<frame>/stage/<name>``
so that it cannot be taken for the frame's own topics.

Control is off unless a shared secret is configured: then the bridge subscribes to
``<prefix>/<frame>/control`` and answers on ``<prefix>/<frame>/control/reply``::

    {"id": 1, "secret": "s3cret", "command": "scale", "args": {"stage": "usage", "replicas": 3}}
    {"id": 1, "status": "ok", "code": 0, "result": {"stage": "usage", "from": 2, "to": 3}}

Verbs that change nothing (``status``, ``commands``) need no secret; every other request
without the right one is answered with code ``UNAUTHORIZED`` and never reaches the frame.

The command's arguments and handler are in ``pipeline.cli_mqtt``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import hmac
import json
import logging
import os
import signal
import time
from dataclasses import dataclass
from typing import Any

import aiomqtt
import psutil

from pipeline.cli_mqtt import BACKOFF_FIRST, BACKOFF_MAX, DEFAULT_PORT, PASSWORD_ENV
from pipeline.control import COMMANDS, error, ok
from pipeline.errors import ControlCode, ControlError, ExitCode, PipelineError, UsageError
from pipeline.feed import SILENCE, follow
from pipeline.remote import RemoteFrame

log = logging.getLogger("pipeline.mqtt")

#: seconds a control request to the frame may take
API_TIMEOUT = 3.0
#: seconds to wait for the broker to accept a connection or a message
BROKER_TIMEOUT = 5.0

#: topic names under ``<prefix>/<frame>/`` a stage of the same name must not take
RESERVED = ("status", "control")


@dataclass(frozen=True)
class Broker:
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @classmethod
    def parse(cls, text: str) -> Broker:
        """``HOST``, ``HOST:PORT``, ``[IPV6]`` or ``[IPV6]:PORT``.

        >>> Broker.parse("mqtt.example.org")
        Broker(host='mqtt.example.org', port=1883)
        >>> str(Broker.parse("[::1]:1884"))
        '[::1]:1884'
        """
        host, port = text, ""
        if text.startswith("["):
            host, sep, rest = text[1:].partition("]")
            if not sep or (rest and not rest.startswith(":")):
                raise UsageError(f"--broker {text!r}: expected [IPV6] or [IPV6]:PORT")
            port = rest[1:]
        elif text.count(":") == 1:
            host, _, port = text.partition(":")
        if not host:
            raise UsageError(f"--broker {text!r}: no host name; expected HOST[:PORT]")
        if not port:
            return cls(host, DEFAULT_PORT)
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise UsageError(f"--broker {text!r}: the port must be a number from 1 to 65535")
        return cls(host, int(port))


@dataclass(frozen=True)
class Topics:
    """The topics of one frame under one prefix."""

    base: str

    @property
    def status(self) -> str:
        return f"{self.base}/status"

    @property
    def control(self) -> str:
        return f"{self.base}/control"

    @property
    def reply(self) -> str:
        return f"{self.base}/control/reply"

    def stage(self, name: str) -> str:
        """The topic of a stage's figures.

        >>> Topics("pipeline/wrstat").stage("usage"), Topics("pipeline/wrstat").stage("status")
        ('pipeline/wrstat/usage', 'pipeline/wrstat/stage/status')
        """
        return f"{self.base}/stage/{name}" if name in RESERVED else f"{self.base}/{name}"


STAGE_FIELDS = ("desired", "alive", "ended", "records_in", "records_out", "rate_in",
                "rate_out", "backlog", "busy", "cpu", "rss", "errors", "p50", "p99")  # fmt: skip


def stage_figures(frame: str, name: str, s: dict[str, Any]) -> dict[str, Any]:
    """What ``<prefix>/<frame>/<stage>`` carries, from the stage's part of a status."""
    out: dict[str, Any] = {"frame": frame, "stage": name}
    out.update({k: s.get(k) for k in STAGE_FIELDS})
    progress = s.get("progress")
    out["progress"] = (
        {"done": progress[0], "total": progress[1], "unit": progress[2]} if progress else None
    )
    return out


def frame_summary(st: dict[str, Any]) -> dict[str, Any]:
    """What ``<prefix>/<frame>/status`` carries, from a status."""
    return {
        "frame": st.get("frame"),
        "pid": st.get("pid"),
        "run_id": st.get("run_id"),
        "state": st.get("state"),
        "uptime": st.get("uptime"),
        "rescale": st.get("rescale"),
        "errors": st.get("errors", []),
        "stages": list(st.get("stages", {})),
        "time": time.time(),
    }


def gone(frame: RemoteFrame, reason: str) -> bytes:
    return json.dumps({"frame": frame.name, "pid": frame.pid, "state": "gone",
                       "reason": reason, "time": time.time()}).encode()  # fmt: skip


def _request(payload: Any) -> dict[str, Any]:
    """A control message as a JSON object; ``ControlError`` if it is not one."""
    try:
        raw = payload if isinstance(payload, str) else bytes(payload).decode()
        req = json.loads(raw)
    except (TypeError, ValueError) as exc:  # UnicodeDecodeError is a ValueError
        msg = f"the request is not JSON: {exc}"
        raise ControlError(ControlCode.BAD_REQUEST, msg) from None
    if not isinstance(req, dict):
        msg = 'a request is a JSON object: {"id": 1, "secret": "...", "command": "status"}'
        raise ControlError(ControlCode.BAD_REQUEST, msg)
    return req


class Feed:
    """The frame's status feed, read on the event loop: the newest status, and whether the
    frame (or the bridge) has ended."""

    def __init__(self, frame: RemoteFrame, ask: Any) -> None:
        self.frame = frame
        self.sub = frame.subscribe()
        self._ask = ask
        self.latest: dict[str, Any] | None = None
        self.ended: str | None = None
        self._wake = asyncio.Event()

    def end(self, reason: str) -> None:
        if self.ended is None:
            self.ended = reason
        self._wake.set()

    async def next(self) -> dict[str, Any] | None:
        """The next status, or None once the feed has ended."""
        await self._wake.wait()
        self._wake.clear()
        return None if self.ended is not None else self.latest

    async def wait_ended(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.ended is None and (left := deadline - time.monotonic()) > 0:
            await asyncio.sleep(min(left, 0.1))

    async def follow(self) -> None:
        async for st in follow(self.sub, self._stopped, SILENCE):
            self.latest = st
            self._wake.set()
        self.end("the frame stopped")

    async def _stopped(self) -> bool:
        if not psutil.pid_exists(self.frame.pid):
            return True
        try:
            st = await self._ask("status", {})
        except ControlError as exc:
            return exc.code in (ControlCode.UNREACHABLE, ControlCode.NOT_RUNNING)
        if isinstance(st, dict):  # the feed is silent but the frame answers: use that
            self.latest = st
            self._wake.set()
        return False


class Bridge:
    """One frame, one broker."""

    def __init__(
        self,
        frame: RemoteFrame,
        broker: Broker,
        prefix: str,
        qos: int = 0,
        secret: str | None = None,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        self.frame = frame
        self.broker = broker
        self.topics = Topics(f"{prefix.rstrip('/')}/{frame.name}")
        self.qos = qos
        self.secret = secret
        self.username = username
        self.password = password
        # every request to the frame goes through one thread: its control socket is not
        # shared between threads, and a request never blocks the event loop
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="mqtt-api")

    async def ask(self, command: str, args: dict[str, Any]) -> Any:
        """The frame's result for one request; ``ControlError`` as ``RemoteFrame.request``."""
        call = functools.partial(self.frame.request, command, **args)
        return await asyncio.get_running_loop().run_in_executor(self._pool, call)

    def _client(self) -> aiomqtt.Client:
        will = gone(self.frame, "the bridge lost its connection to the broker")
        return aiomqtt.Client(
            self.broker.host,
            self.broker.port,
            username=self.username,
            password=self.password,
            identifier=f"pipeline-{self.frame.name}-{os.getpid()}",
            will=aiomqtt.Will(self.topics.status, will, qos=1, retain=True),
            timeout=BROKER_TIMEOUT,
            keepalive=10,
        )

    async def run(self) -> int:
        """Publish until the frame stops (exit 0); ``PipelineError`` if the broker cannot be
        reached at the start."""
        feed = Feed(self.frame, self.ask)
        loop = asyncio.get_running_loop()
        for sig, name in ((signal.SIGINT, "SIGINT"), (signal.SIGTERM, "SIGTERM")):
            loop.add_signal_handler(sig, feed.end, f"the bridge was stopped ({name})")
        follower = asyncio.create_task(feed.follow())
        try:
            return await self._connected(feed)
        finally:
            follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await follower
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
            self._pool.shutdown(wait=True)

    async def _connected(self, feed: Feed) -> int:
        connected = False
        delay = BACKOFF_FIRST
        while True:
            try:
                async with self._client() as client:
                    if connected:
                        log.warning("reconnected to the MQTT broker at %s", self.broker)
                    else:
                        log.info("publishing frame '%s' to %s under %s/", self.frame.name,
                                 self.broker, self.topics.base)  # fmt: skip
                    connected = True
                    delay = BACKOFF_FIRST
                    await self._session(client, feed)
                    log.info("%s; published its status as gone", feed.ended)
                    return ExitCode.OK
            except aiomqtt.MqttError as exc:
                if not connected:
                    raise PipelineError(self._unreachable(exc)) from None
                if feed.ended is not None:
                    log.warning("%s, but the broker at %s could not be told: %s",
                                feed.ended, self.broker, exc)  # fmt: skip
                    return ExitCode.OK
                log.warning("lost the MQTT broker at %s (%s); reconnecting in %gs",
                            self.broker, exc, delay)  # fmt: skip
                await feed.wait_ended(delay)
                delay = min(delay * 2, BACKOFF_MAX)

    def _unreachable(self, exc: aiomqtt.MqttError) -> str:
        head = f"cannot connect to the MQTT broker at {self.broker}: {exc}"
        if isinstance(exc, aiomqtt.MqttCodeError):
            return f"{head}; check --username and --password (or ${PASSWORD_ENV})"
        return (
            f"{head}; start a broker there (e.g. mosquitto) or give the right one with "
            "--broker HOST[:PORT]"
        )

    async def _session(self, client: aiomqtt.Client, feed: Feed) -> None:
        """One connection: publish statuses (and answer control requests) until the feed
        ends; ``MqttError`` if the broker goes away first."""
        if self.secret is not None:
            await client.subscribe(self.topics.control, qos=1)
            log.info("taking control requests on %s", self.topics.control)
        tasks = [asyncio.create_task(self._publish(client, feed))]
        if self.secret is not None:
            tasks.append(asyncio.create_task(self._control(client)))
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        for t in done:
            t.result()  # an MqttError reaches the reconnection loop

    async def _publish(self, client: aiomqtt.Client, feed: Feed) -> None:
        if feed.latest is not None and feed.ended is None:
            await self._publish_status(client, feed.latest)
        while (st := await feed.next()) is not None:
            await self._publish_status(client, st)
        assert feed.ended is not None
        await client.publish(self.topics.status, gone(self.frame, feed.ended), qos=1,
                             retain=True)  # fmt: skip

    async def _publish_status(self, client: aiomqtt.Client, st: dict[str, Any]) -> None:
        for name, s in st.get("stages", {}).items():
            body = json.dumps(stage_figures(self.frame.name, name, s))
            await client.publish(self.topics.stage(name), body, qos=self.qos)
        await client.publish(self.topics.status, json.dumps(frame_summary(st)), qos=1,
                             retain=True)  # fmt: skip

    async def _control(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            if message.topic.value != self.topics.control:
                continue
            reply = await self.answer(message.payload)
            await client.publish(self.topics.reply, json.dumps(reply), qos=1)

    async def answer(self, payload: Any) -> dict[str, Any]:
        """The reply to one control message: the frame's, or a refusal of the bridge's."""
        rid: Any = None
        try:
            req = _request(payload)
            rid = req.get("id")
            command, args = req.get("command"), req.get("args", {})
            if not isinstance(command, str):
                raise ControlError(ControlCode.BAD_REQUEST, "the request has no 'command'")
            if not isinstance(args, dict) or "command" in args:
                msg = "'args' must be a JSON object (without a 'command' key)"
                raise ControlError(ControlCode.BAD_REQUEST, msg)
            self._authorize(command, req.get("secret"))
            log.info("control request %r from MQTT (id %r)", command, rid)
            return ok(rid, await self.ask(command, args))
        except ControlError as exc:
            if exc.code == ControlCode.UNAUTHORIZED:
                log.warning("control request refused: %s", exc.reason)
            return error(rid, exc)

    def _authorize(self, command: str, given: Any) -> None:
        assert self.secret is not None
        verb = COMMANDS.get(command)
        if verb is not None and not verb.changes:
            return
        if not isinstance(given, str):
            reason = f"'{command}' changes the frame: the request needs the bridge's 'secret'"
        elif not hmac.compare_digest(given.encode(), self.secret.encode()):
            reason = f"'{command}' refused: wrong 'secret'"
        else:
            return
        raise ControlError(ControlCode.UNAUTHORIZED, reason)
