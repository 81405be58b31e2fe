"""Every ZeroMQ socket of the engine lives here. Stages never see one.

Layout (why it is built this way):

* Each worker process binds one **inbox** (PULL). Data batches, acknowledgements and credit
  grants for any replica in that process arrive there, addressed by replica id in the header,
  so one poll serves everything and async stages can run many replicas behind one socket.
* A worker sends to a peer through one **PUSH per peer worker**, connected to that peer's
  inbox. Credit bounds what is in flight, so these sockets have no high-water mark to hit,
  and a PUSH to a single peer keeps batches in order. Endpoints carry the worker's unique id,
  so a restarted replica never receives messages meant for its dead predecessor.
* The supervisor binds a **control** ROUTER (hello, peers, end of stream, stop, final stats)
  and a **stats** PULL for periodic counters, both apart from the data path.
* For people and tools it binds an **api** ROUTER (JSON requests and replies: status,
  scale, pause, ...; see ``pipeline.control``) and a **status** PUB that publishes the
  frame's status once a second (topic ``status``); ``ControlClient`` and
  ``StatusSubscriber`` are the other ends. Both are owner-only unix sockets by default.
* Endpoints are ``ipc://`` files in the run's socket directory by default, or ``tcp://`` with
  ports chosen by the kernel and reported to the supervisor, which tells peers where to
  connect; nothing assumes one host.
* Contexts are created in the process that uses them, after the process starts; no socket or
  context crosses a fork.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import zmq
import zmq.asyncio

from pipeline.codec import Buffer, pack, unpack
from pipeline.security import CurveServer, Keys, secure_client
from pipeline.topology import MAX_MESSAGE

#: ipc paths must fit in sockaddr_un (108 bytes on Linux)
_IPC_MAX = 100
#: how long closing sockets may take to flush the last messages (ms)
_LINGER_MS = 2000
#: buffers at least this large are sent without copying
_ZERO_COPY_MIN = 1 << 16


def socket_dir(run_dir: Path) -> Path:
    """Where the ipc endpoints of a run live: under the run directory when the path is short
    enough for a unix socket, otherwise in a per-run directory under the temp dir."""
    local = run_dir.resolve() / "sockets"
    if len(str(local)) + 24 <= _IPC_MAX:
        return local
    digest = hashlib.sha1(str(local).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"pipeline-{os.getuid()}-{digest}"


def prepare_socket_dir(path: Path) -> None:
    """A fresh, owner-only socket directory (stale files from a killed run are removed)."""
    if path.exists():
        shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True, mode=0o700)


def remove_socket_dir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def endpoint_for(transport: str, host: str, sock_dir: Path, name: str) -> str:
    """The address to bind for ``name``; tcp ports are picked by the kernel."""
    if transport == "tcp":
        return f"tcp://{host}:*"
    return f"ipc://{sock_dir / name}"


def _last_endpoint(sock: zmq.Socket[Any]) -> str:
    """The address a socket actually bound (with the port the kernel chose)."""
    value = sock.getsockopt(zmq.LAST_ENDPOINT)
    return value.decode() if isinstance(value, bytes) else str(value)


class WorkerSockets:
    """The sockets of one worker process, on its asyncio event loop."""

    def __init__(
        self,
        worker_id: str,
        inbox_bind: str,
        control: str,
        stats: str,
        curve: str | None = None,
        max_message: int = MAX_MESSAGE,
    ) -> None:
        self.actx = zmq.asyncio.Context()
        # Send-only sockets are plain (synchronous) sockets on the same context: a send never
        # blocks (no high-water mark, credit bounds the data) and needs no event loop.
        self.sctx: zmq.Context[zmq.Socket[Any]] = zmq.Context.shadow(self.actx.underlying)
        #: the frame's CURVE keys (tcp): the inbox serves with them, the rest connect with them
        self.keys = Keys(curve) if curve else None
        self.auth = self.keys.authenticator(self.sctx) if self.keys else None
        # The inbox is read without per-message futures: the event loop watches its file
        # descriptor, and the replicas drain it directly between batches (``drain_inbox``).
        self.inbox = self.sctx.socket(zmq.PULL)
        self.inbox.setsockopt(zmq.RCVHWM, 0)
        self.inbox.setsockopt(zmq.LINGER, 0)
        self.inbox.setsockopt(zmq.MAXMSGSIZE, max_message)
        if self.keys:
            self.keys.secure_server(self.inbox)
        self.inbox.bind(inbox_bind)
        self.endpoint = _last_endpoint(self.inbox)
        self._inbox_fd = int(self.inbox.getsockopt(zmq.FD))
        self._dispatch: Callable[[list[zmq.Frame]], None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.control = self.actx.socket(zmq.DEALER)
        self.control.setsockopt(zmq.ROUTING_ID, worker_id.encode())
        self.control.setsockopt(zmq.LINGER, _LINGER_MS)
        self.control.setsockopt(zmq.SNDHWM, 0)
        self.control.setsockopt(zmq.MAXMSGSIZE, max_message)
        self.stats = self.sctx.socket(zmq.PUSH)
        self.stats.setsockopt(zmq.SNDHWM, 100)
        self.stats.setsockopt(zmq.LINGER, _LINGER_MS)
        if self.keys:
            self.keys.secure_client(self.control)
            self.keys.secure_client(self.stats)
        self.control.connect(control)
        self.stats.connect(stats)
        self.peers: dict[str, zmq.Socket[Any]] = {}

    def watch_inbox(self, dispatch: Callable[[list[zmq.Frame]], None]) -> None:
        """Hand every inbox message to ``dispatch`` (frames share the received memory)."""
        self._dispatch = dispatch
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self._inbox_fd, self.drain_inbox)
        self.drain_inbox()

    def drain_inbox(self) -> None:
        """Dispatch every message already received. The descriptor only signals changes,
        so it must be drained to empty each time; a new arrival signals it again."""
        sock, dispatch = self.inbox, self._dispatch
        assert dispatch is not None
        # asking first is much cheaper than the exception of an empty non-blocking receive
        while int(sock.get(zmq.EVENTS)) & zmq.POLLIN:
            try:
                frames = sock.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                # readable a moment ago, not now: over tcp a message whose sender went away
                # part-way is dropped (its sender still holds it, unacknowledged)
                break
            dispatch(frames)

    def send(self, endpoint: str, frames: Sequence[Buffer]) -> None:
        """Send to the worker whose inbox is ``endpoint`` (connecting on first use)."""
        sock = self.peers.get(endpoint)
        if sock is None:
            sock = self.sctx.socket(zmq.PUSH)
            sock.setsockopt(zmq.SNDHWM, 0)
            sock.setsockopt(zmq.LINGER, _LINGER_MS)
            if self.keys:
                self.keys.secure_client(sock)
            sock.connect(endpoint)
            self.peers[endpoint] = sock
        last = len(frames) - 1
        for i, frame in enumerate(frames):
            # Only numpy buffers go without copying: for encoded bodies a copy is cheaper
            # than handing the buffer's release to pyzmq's garbage-collector thread.
            zero_copy = type(frame) is np.ndarray and frame.nbytes >= _ZERO_COPY_MIN
            sock.send(frame, zmq.SNDMORE if i < last else 0, copy=not zero_copy)  # type: ignore[arg-type]

    def forget(self, endpoint: str) -> None:
        """Drop the connection to a worker that is gone; what is queued for it is discarded."""
        sock = self.peers.pop(endpoint, None)
        if sock is not None:
            sock.close(linger=0)

    async def control_receive(self) -> Any:
        frames = await self.control.recv_multipart()
        return unpack(frames[-1])

    async def control_send(self, msg: Any) -> None:
        await self.control.send_multipart([pack(msg)])

    def send_stats(self, msg: Any) -> None:
        """Best effort: periodic counters are dropped rather than block the stage."""
        with contextlib.suppress(zmq.Again):
            self.stats.send(pack(msg), flags=zmq.NOBLOCK)

    def close(self) -> None:
        """Close everything, letting queued messages (final acknowledgements) go out."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(self._inbox_fd)
        self.inbox.close(linger=0)
        for sock in self.peers.values():
            sock.close()
        self.peers.clear()
        self.stats.close()
        self.control.close()
        if self.auth is not None:
            self.auth.stop()
        self.actx.term()


class SupervisorSockets:
    """The supervisor's control ROUTER and stats PULL, and the api ROUTER and status PUB
    for people and tools, polled together with plain fds."""

    def __init__(
        self,
        control_bind: str,
        stats_bind: str,
        api_bind: str,
        pub_bind: str,
        curve_dir: Path | None = None,
        keys: Path | None = None,
        max_message: int = MAX_MESSAGE,
    ) -> None:
        self.ctx = zmq.Context()
        #: CURVE on every socket (required on tcp; ``pipeline.security``): the topology's
        #: ``keys``, else keys made for the run under ``curve_dir``
        try:
            self.curve = CurveServer(self.ctx, curve_dir, keys) if curve_dir is not None else None
        except BaseException:
            self.ctx.term()  # keys that cannot be used: nothing of the frame is left open
            raise
        self.api = self.ctx.socket(zmq.ROUTER)
        self.api.setsockopt(zmq.LINGER, 0)
        self.api.setsockopt(zmq.ROUTER_MANDATORY, 0)  # a client that left is not an error
        self.pub = self.ctx.socket(zmq.PUB)
        self.pub.setsockopt(zmq.LINGER, 0)
        self.pub.setsockopt(zmq.SNDHWM, 10)  # a slow watcher misses updates, never blocks us
        if self.curve is not None:
            self.curve.secure(self.api)
            self.curve.secure(self.pub)
        self.api.bind(api_bind)
        self.api_endpoint = _last_endpoint(self.api)
        self.pub.bind(pub_bind)
        self.pub_endpoint = _last_endpoint(self.pub)
        self.control = self.ctx.socket(zmq.ROUTER)
        self.control.setsockopt(zmq.ROUTER_MANDATORY, 1)
        self.control.setsockopt(zmq.LINGER, 0)
        self.stats = self.ctx.socket(zmq.PULL)
        self.stats.setsockopt(zmq.LINGER, 0)
        for sock in (self.control, self.stats, self.api):
            sock.setsockopt(zmq.MAXMSGSIZE, max_message)
        if self.curve is not None:
            self.curve.secure(self.control)
            self.curve.secure(self.stats)
        self.control.bind(control_bind)
        self.control_endpoint = _last_endpoint(self.control)
        self.stats.bind(stats_bind)
        self.stats_endpoint = _last_endpoint(self.stats)
        self.poller = zmq.Poller()
        self.poller.register(self.control, zmq.POLLIN)
        self.poller.register(self.stats, zmq.POLLIN)
        self.poller.register(self.api, zmq.POLLIN)
        self._fds: set[int] = set()
        #: api requests received by the last ``poll``: (envelope, request bytes)
        self.requests: list[tuple[list[bytes], bytes]] = []

    def watch_fd(self, fd: int) -> None:
        if fd not in self._fds:
            self.poller.register(fd, zmq.POLLIN)
            self._fds.add(fd)

    def unwatch_fd(self, fd: int) -> None:
        if fd in self._fds:
            self.poller.unregister(fd)
            self._fds.discard(fd)

    def poll(
        self, timeout_ms: int
    ) -> tuple[list[tuple[str, Any]], list[tuple[str, Any]], set[int]]:
        """Wait up to ``timeout_ms``; returns control messages ``(worker, msg)``, stats
        messages, and the watched fds that became readable."""
        events = dict(self.poller.poll(timeout_ms))
        controls: list[tuple[str, Any]] = []
        stats: list[tuple[str, Any]] = []
        if self.control in events:
            while True:
                try:
                    ident, payload = self.control.recv_multipart(flags=zmq.NOBLOCK)
                except zmq.Again:
                    break
                controls.append((ident.decode(), unpack(payload)))
        if self.stats in events:
            while True:
                try:
                    payload = self.stats.recv(flags=zmq.NOBLOCK)
                except zmq.Again:
                    break
                stats.append(("", unpack(payload)))
        if self.api in events:
            while True:
                try:
                    frames = self.api.recv_multipart(flags=zmq.NOBLOCK)
                except zmq.Again:
                    break
                # [client id, (empty delimiter of a REQ socket,) request]
                self.requests.append((frames[:-1], frames[-1]))
        ready = {fd for fd in self._fds if fd in events}
        return controls, stats, ready

    def reply(self, envelope: list[bytes], payload: bytes) -> None:
        """Answer an api request (dropped if its client has gone)."""
        with contextlib.suppress(zmq.ZMQError):
            self.api.send_multipart([*envelope, payload], flags=zmq.NOBLOCK)

    def publish(self, topic: bytes, payload: bytes) -> None:
        with contextlib.suppress(zmq.Again):
            self.pub.send_multipart([topic, payload], flags=zmq.NOBLOCK)

    def receive_stats(self) -> list[tuple[str, Any]]:
        """Stats messages already received."""
        out: list[tuple[str, Any]] = []
        while self.stats.poll(0, zmq.POLLIN):
            out.append(("", unpack(self.stats.recv())))
        return out

    def receive_control(self, timeout_ms: int) -> list[tuple[str, Any]]:
        """Control messages arriving within ``timeout_ms`` (returns at the first lull)."""
        out: list[tuple[str, Any]] = []
        while self.control.poll(timeout_ms, zmq.POLLIN):
            ident, payload = self.control.recv_multipart()
            out.append((ident.decode(), unpack(payload)))
            timeout_ms = 50
        return out

    def send(self, worker_id: str, msg: Any) -> bool:
        """Send to a worker; False if it is not connected (gone, or not started yet)."""
        try:
            self.control.send_multipart([worker_id.encode(), pack(msg)], flags=zmq.NOBLOCK)
        except (zmq.Again, zmq.ZMQError):
            return False
        return True

    def close(self) -> None:
        self.control.close(linger=0)
        self.stats.close(linger=0)
        self.api.close(linger=0)
        self.pub.close(linger=0)
        if self.curve is not None:
            self.curve.stop()
        self.ctx.term()


class ControlClient:
    """Requests to a frame's api endpoint, one at a time, each with a timeout.

    A DEALER rather than a REQ socket, so a frame that never answers (it stopped) costs a
    timeout, not a socket stuck waiting forever."""

    def __init__(self, endpoint: str, timeout: float = 5.0, curve: str | None = None) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        self.curve = curve
        self.ctx = zmq.Context()
        self.sock = self._connect()
        self._n = 0

    def _connect(self) -> zmq.Socket[Any]:
        sock = self.ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        if self.curve is not None:
            secure_client(sock, self.curve)
        sock.connect(self.endpoint)
        return sock

    def request(self, payload: bytes, match: Callable[[bytes], bool]) -> bytes | None:
        """Send ``payload``; the first reply ``match`` accepts, or None after the timeout
        (the socket is then replaced, so a late reply cannot be taken for the next one)."""
        self.sock.send_multipart([b"", payload])
        deadline = time.monotonic() + self.timeout
        while (left := deadline - time.monotonic()) > 0:
            if not self.sock.poll(int(left * 1000) + 1, zmq.POLLIN):
                break
            reply = self.sock.recv_multipart()[-1]
            if match(reply):
                return reply
        self.sock.close(linger=0)
        self.sock = self._connect()
        return None

    def close(self) -> None:
        self.sock.close(linger=0)
        self.ctx.term()


class StatusSubscriber:
    """The status a frame publishes once a second."""

    def __init__(self, endpoint: str, curve: str | None = None) -> None:
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.SUB)
        self.sock.setsockopt(zmq.LINGER, 0)
        if curve is not None:
            secure_client(self.sock, curve)
        self.sock.setsockopt(zmq.RCVHWM, 10)
        self.sock.setsockopt(zmq.SUBSCRIBE, b"status")
        self.sock.connect(endpoint)

    def receive(self, timeout: float) -> bytes | None:
        """The newest status that arrives within ``timeout`` seconds, or None."""
        if not self.sock.poll(int(timeout * 1000), zmq.POLLIN):
            return None
        payload = self.sock.recv_multipart()[-1]
        while self.sock.poll(0, zmq.POLLIN):  # only the newest matters
            payload = self.sock.recv_multipart()[-1]
        return payload

    def fileno(self) -> int:
        """A descriptor that becomes readable when a status may have arrived (for event
        loops); call ``receive(0)`` then."""
        return int(self.sock.getsockopt(zmq.FD))

    def close(self) -> None:
        self.sock.close(linger=0)
        self.ctx.term()
