"""Real message brokers for tests, on free ports, and clients that watch them.

``Mosquitto(folder)`` is a broker of the test's own (a context manager); ``MqttWatch(port,
"pipeline/#")`` subscribes and keeps what arrives, and ``wait_for(topic, test)`` waits for a
message whose JSON passes ``test``.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def mosquitto_binary() -> str:
    found = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/local/sbin")
    if found is None:
        msg = "mosquitto is not installed: install it (make deps, or apt-get install mosquitto)"
        raise RuntimeError(msg)
    return found


class Mosquitto:
    """A Mosquitto broker of the test's own on a free 127.0.0.1 port: anonymous, nothing
    persisted. ``stop()`` and ``start()`` again keep the port (to drop its clients)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.conf = folder / "mosquitto.conf"
        self.log = folder / "mosquitto.log"
        self.conf.write_text(
            f"listener {self.port} {HOST}\n"
            "allow_anonymous true\n"
            "persistence false\n"
            "log_dest stderr\n"
            "log_type error\nlog_type warning\nlog_type notice\n"
            # run as whoever runs the tests (root would otherwise become 'mosquitto')
            f"user {pwd.getpwuid(os.getuid()).pw_name}\n"
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [mosquitto_binary(), "-c", str(self.conf)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        deadline = time.monotonic() + timeout
        while True:
            try:
                with socket.create_connection((HOST, self.port), timeout=0.5):
                    return
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                msg = f"mosquitto did not start on {HOST}:{self.port}:\n{self.log.read_text()}"
                raise RuntimeError(msg)
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.proc = None

    def __enter__(self) -> Mosquitto:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


@dataclass(frozen=True)
class Received:
    topic: str
    payload: Any  # the JSON value, or the raw bytes if it is not JSON
    retain: bool
    time: float


class MqttWatch:
    """A client that subscribes to ``topic`` (again after every reconnection) and keeps
    everything it receives."""

    def __init__(self, port: int, topic: str) -> None:
        self.topic = topic
        self.received: list[Received] = []
        self._lock = threading.Condition()
        self._subscribed = threading.Event()
        self.client = paho.Client(CallbackAPIVersion.VERSION2)
        self.client.on_connect = self._connected
        self.client.on_message = self._message
        self.client.on_subscribe = lambda *_: self._subscribed.set()
        self.client.reconnect_delay_set(1, 2)
        self.client.connect(HOST, port, keepalive=10)
        self.client.loop_start()
        if not self._subscribed.wait(10):
            self.close()
            raise RuntimeError(f"could not subscribe to {topic} at {HOST}:{port}")

    def _connected(self, client: paho.Client, *_: Any) -> None:
        client.subscribe(self.topic, qos=1)

    def _message(self, client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
        try:
            payload: Any = json.loads(msg.payload)
        except ValueError:
            payload = msg.payload
        with self._lock:
            self.received.append(Received(msg.topic, payload, bool(msg.retain), time.time()))
            self._lock.notify_all()

    def on(self, topic: str) -> list[Received]:
        with self._lock:
            return [m for m in self.received if m.topic == topic]

    def wait_for(
        self, topic: str, test: Callable[[Any], bool] = lambda _: True, timeout: float = 10.0
    ) -> Received:
        """The first message on ``topic`` (received before or after) whose payload passes
        ``test``; AssertionError after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._lock:
            seen = 0
            while True:
                for m in self.received[seen:]:
                    if m.topic == topic and test(m.payload):
                        return m
                seen = len(self.received)
                left = deadline - time.monotonic()
                if left <= 0:
                    got = [m.payload for m in self.received if m.topic == topic][-3:]
                    raise AssertionError(f"nothing as expected on {topic} in {timeout:g}s: {got}")
                self._lock.wait(left)

    def publish(self, topic: str, payload: Any) -> None:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.client.publish(topic, body, qos=1).wait_for_publish(5)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()

    def __enter__(self) -> MqttWatch:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
