"""``pipeline web``: a web page that shows one running frame live and operates it.

The server subscribes to the frame's status feed and forwards control requests to its
control endpoint (``pipeline.control``). Routes:

* ``GET /``: the page (``pipeline.web_page``): the graph, sparklines, a table of every
  figure, and controls (scale, pause, resume, stop);
* ``GET /api/status``: the newest status (JSON, as ``pipeline status --json``);
* ``GET /api/events``: server-sent events: a ``history`` event (recent rates), then one
  ``status`` event per status, and an ``end`` event when the frame has stopped;
* ``POST /api/control`` ``{"command": "scale", "args": {"stage": "usage", "replicas": 3}}``:
  the frame's reply ``{"status", "code", "result" | "reason"}``. Verbs that change the frame
  need ``Authorization: Bearer <token>`` (else HTTP 401, code ``UNAUTHORIZED``). HTTP 200
  when the frame carried it out, 400 for a malformed request, an unknown verb or stage, 409
  when the frame refused (not scalable, a scale under way, stopping), 503 when the frame did
  not answer;
* ``GET /metrics``: the status in the Prometheus text format (``pipeline.metrics``).

The server exits by itself (0) a short while after the frame has stopped. The command's
arguments and handler are in ``pipeline.cli_web``.

    serve(registry.find("wrstat"), ("127.0.0.1", 8765), token="s3cret")  # until it stops
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hmac
import json
import secrets
import signal
from collections.abc import Callable
from typing import Any

import psutil
from aiohttp import web

from pipeline.cli_web import DEFAULT_PORT
from pipeline.control import COMMANDS
from pipeline.errors import ControlCode, ControlError, UsageError
from pipeline.feed import follow
from pipeline.metrics import CONTENT_TYPE, exposition
from pipeline.remote import RemoteFrame
from pipeline.transport import StatusSubscriber
from pipeline.web_page import PAGE

#: seconds of rates the page's sparklines show
HISTORY = 120

#: the HTTP status of a reply with this code
HTTP_STATUS = {
    ControlCode.OK: 200,
    ControlCode.BAD_REQUEST: 400,
    ControlCode.UNKNOWN_COMMAND: 400,
    ControlCode.NO_SUCH_STAGE: 400,
    ControlCode.REFUSED: 409,
    ControlCode.CONFLICT: 409,
    ControlCode.NOT_RUNNING: 409,
    ControlCode.UNAUTHORIZED: 401,
    ControlCode.UNREACHABLE: 503,
}


class Watcher:
    """The newest status of one frame, the listeners waiting for the next, and whether
    the frame has stopped: no status for ``stale_after`` seconds and no answer on its
    control endpoint, or its process gone."""

    def __init__(self, record: dict[str, Any], timeout: float = 5.0, stale_after: float = 3.0):
        self.record = record
        self.name = str(record.get("frame", "?"))
        self.pid = int(record.get("pid", 0))
        self.stale_after = stale_after
        self.latest: dict[str, Any] | None = None
        self.history: collections.deque[dict[str, Any]] = collections.deque(maxlen=HISTORY)
        self.ended = asyncio.Event()
        self.listeners: set[asyncio.Queue[dict[str, Any] | None]] = set()
        self.remote = RemoteFrame(record, timeout)
        self._probe = RemoteFrame(record, min(timeout, 1.0))
        self._lock = asyncio.Lock()

    async def request(self, command: str, args: dict[str, Any]) -> dict[str, Any]:
        """The frame's reply to one request (``status``, ``code``, ``result``/``reason``)."""
        try:
            async with self._lock:  # one request at a time on the control socket
                result = await asyncio.to_thread(self.remote.request, command, **args)
        except ControlError as exc:
            return {"status": "error", "code": int(exc.code), "reason": exc.reason}
        return {"status": "ok", "code": int(ControlCode.OK), "result": result}

    def _publish(self, status: dict[str, Any]) -> None:
        self.latest = status
        rates = {n: [s["rate_in"], s["rate_out"]] for n, s in status.get("stages", {}).items()}
        self.history.append({"uptime": status.get("uptime", 0.0), "rates": rates})
        for q in self.listeners:
            q.put_nowait(status)

    def _end(self) -> None:
        self.ended.set()
        for q in self.listeners:
            q.put_nowait(None)

    async def _gone(self) -> bool:
        if not psutil.pid_exists(self.pid):
            return True
        try:
            await asyncio.to_thread(self._probe.request, "status")
        except ControlError:
            return True
        return False

    async def run(self) -> None:
        """Follow the status feed until the frame stops."""
        sub = StatusSubscriber(str(self.record["status"]), self.record.get("curve"))
        try:
            async for status in follow(sub, self._gone, self.stale_after):
                self._publish(status)
            self._end()
        finally:
            sub.close()

    def close(self) -> None:
        self.remote.close()
        self._probe.close()


def _error(code: ControlCode, reason: str) -> web.Response:
    body = {"status": "error", "code": int(code), "reason": reason}
    unauthorized = code == ControlCode.UNAUTHORIZED
    headers = {"WWW-Authenticate": 'Bearer realm="pipeline"'} if unauthorized else None
    return web.json_response(body, status=HTTP_STATUS[code], headers=headers)


class Monitor:
    """The routes of the web monitor over one ``Watcher``."""

    def __init__(self, watcher: Watcher, token: str) -> None:
        if not token:
            raise UsageError("the web monitor needs a non-empty token")
        self.watcher = watcher
        self.token = token.encode()

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024)
        app.router.add_get("/", self.page)
        app.router.add_get("/api/status", self.status)
        app.router.add_get("/api/events", self.events)
        app.router.add_post("/api/control", self.control)
        app.router.add_get("/metrics", self.metrics)
        return app

    async def page(self, request: web.Request) -> web.Response:
        csp = ("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
               "connect-src 'self'; img-src data:; frame-ancestors 'none'")  # fmt: skip
        headers = {"Content-Security-Policy": csp, "Cache-Control": "no-store"}
        return web.Response(text=PAGE, content_type="text/html", headers=headers)

    async def _current(self) -> dict[str, Any]:
        """The newest status; asked for when none has been published yet (just started).
        ``ControlError`` if the frame does not answer."""
        if self.watcher.latest is not None:
            return self.watcher.latest
        reply = await self.watcher.request("status", {})
        if reply["status"] != "ok":
            raise ControlError(ControlCode(reply["code"]), reply["reason"])
        result: dict[str, Any] = reply["result"]
        return result

    async def status(self, request: web.Request) -> web.Response:
        try:
            return web.json_response(await self._current())
        except ControlError as exc:
            return _error(exc.code, exc.reason)

    async def metrics(self, request: web.Request) -> web.Response:
        w = self.watcher
        try:
            status: dict[str, Any] | None = await self._current()
        except ControlError:
            status = w.latest
        text = exposition(status, up=status is not None and not w.ended.is_set(), frame=w.name)
        return web.Response(body=text.encode(), headers={"Content-Type": CONTENT_TYPE})

    async def events(self, request: web.Request) -> web.StreamResponse:
        w = self.watcher
        resp = web.StreamResponse(headers={
            "Content-Type": "text/event-stream", "Cache-Control": "no-store",
            "X-Accel-Buffering": "no",
        })  # fmt: skip
        await resp.prepare(request)

        async def send(event: str, data: Any) -> None:
            await resp.write(f"event: {event}\ndata: {json.dumps(data)}\n\n".encode())

        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        w.listeners.add(queue)
        try:
            past = list(w.history)
            await send("history", past[:-1] if w.latest is not None else past)
            if w.latest is not None:
                await send("status", w.latest)
            while not w.ended.is_set():
                try:
                    status = await asyncio.wait_for(queue.get(), 15.0)
                except TimeoutError:
                    await resp.write(b": keep-alive\n\n")
                    continue
                if status is None:
                    break
                await send("status", status)
            await send("end", {"frame": w.name, "reason": "the frame has stopped"})
        except ConnectionResetError:
            pass  # the page went away
        finally:
            w.listeners.discard(queue)
        return resp

    def _authorized(self, request: web.Request) -> bool:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(),
                                                                  self.token)  # fmt: skip

    async def control(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            return _error(ControlCode.BAD_REQUEST, "the body is not JSON")
        if not isinstance(body, dict) or not isinstance(body.get("command"), str):
            msg = 'the body is {"command": VERB, "args": {...}}, e.g. {"command": "pause"}'
            return _error(ControlCode.BAD_REQUEST, msg)
        command, args = body["command"], body.get("args", {})
        if not isinstance(args, dict):
            return _error(ControlCode.BAD_REQUEST, "'args' must be a JSON object")
        verb = COMMANDS.get(command)
        if (verb is None or verb.changes) and not self._authorized(request):
            msg = (f"'{command}' changes the frame and needs the token "
                   "(Authorization: Bearer TOKEN; pipeline web prints it at start)")  # fmt: skip
            return _error(ControlCode.UNAUTHORIZED, msg)
        reply = await self.watcher.request(command, args)
        return web.json_response(reply, status=HTTP_STATUS[ControlCode(reply["code"])])


def url(host: str, port: int, token: str | None = None) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/" + (f"?token={token}" if token else "")


async def serve_async(
    record: dict[str, Any],
    bind: tuple[str, int] = ("127.0.0.1", DEFAULT_PORT),
    token: str | None = None,
    *,
    timeout: float = 5.0,
    stale_after: float = 3.0,
    grace: float = 2.0,
    ready: Callable[[str], None] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Serve the monitor of the frame of ``record`` (``pipeline.registry``) on ``bind``
    until the frame has stopped (and ``grace`` seconds more, for the pages to hear of it)
    or ``stop`` is set. ``ready`` gets the page's URL, token included, once it listens.
    ``OSError`` if ``bind`` cannot be listened on."""
    watcher = Watcher(record, timeout, stale_after)
    token = token or secrets.token_urlsafe(16)
    runner = web.AppRunner(Monitor(watcher, token).app(), access_log=None,
                           shutdown_timeout=1.0)  # fmt: skip
    await runner.setup()
    follow = asyncio.create_task(watcher.run())
    try:
        site = web.TCPSite(runner, bind[0], bind[1])
        await site.start()
        host, port = runner.addresses[0][:2]
        if ready is not None:
            ready(url(host, port, token))
        waits = [follow, asyncio.create_task((stop or asyncio.Event()).wait())]
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        waits[1].cancel()
        if follow.done():
            follow.result()  # a bug in following the feed surfaces here
            print(f"pipeline web: frame '{watcher.name}' (pid {watcher.pid}) has stopped; "
                  f"exiting in {grace:g}s", flush=True)  # fmt: skip
            await asyncio.sleep(grace)
    finally:
        follow.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await follow
        await runner.cleanup()
        watcher.close()


def serve(
    record: dict[str, Any],
    bind: tuple[str, int] = ("127.0.0.1", DEFAULT_PORT),
    token: str | None = None,
    **options: Any,
) -> None:
    """``serve_async`` on an event loop of its own; SIGINT and SIGTERM end it."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await serve_async(record, bind, token, stop=stop, **options)

    asyncio.run(main())
