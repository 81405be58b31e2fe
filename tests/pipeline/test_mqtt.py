"""The MQTT bridge against a real Mosquitto: stage figures and the retained frame status,
control with and without the shared secret, the frame stopping, and broker trouble."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeline.errors import ControlCode, ExitCode
from tests.brokers import HOST, Mosquitto, MqttWatch, free_port
from tests.conftest import start_cli
from tests.running import Running

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

GRAPH = """
name: {name}
stages:
  - name: src
    run: tests.stagelib:ticking
    params: {{every: 0.005}}
    next: double
  - name: double
    run: tests.stagelib:double
    next: sink
  - name: sink
    run: tests.stagelib:Collect
    params: {{folder: "{out}"}}
"""

SECRET = "s3cret"


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    with Mosquitto(tmp_path / "mosquitto") as b:
        yield b


@pytest.fixture(autouse=True)
def no_secret_from_outside(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PIPELINE_MQTT_SECRET", raising=False)
    monkeypatch.delenv("PIPELINE_MQTT_PASSWORD", raising=False)


def frame(tmp_path: Path, name: str) -> Running:
    return Running(GRAPH.format(name=name, out=tmp_path / "out"), tmp_path / "run")


class Bridge:
    """``pipeline mqtt`` run as a user would, attached to ``run``'s frame."""

    def __init__(self, run: Running, port: int, *args: str, env: dict[str, str] | None = None):
        broker = f"{HOST}:{port}"
        self.proc = start_cli("mqtt", "--frame", str(run.run_dir), "--broker", broker, *args,
                              env=env)  # fmt: skip
        self.stderr = ""

    def wait(self, timeout: float = 15) -> int:
        try:
            _, self.stderr = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            _, self.stderr = self.proc.communicate()
            msg = f"the bridge did not exit in {timeout:g}s:\n{self.stderr}"
            raise AssertionError(msg) from None
        return self.proc.returncode

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
        self.wait()


def stop(run: Running) -> None:
    run.frame.request("stop")
    assert run.wait(30).exit_code == ExitCode.OK


def is_gone(status: Any) -> bool:
    return isinstance(status, dict) and status.get("state") == "gone"


def test_stage_figures_and_a_retained_frame_status_are_published_until_the_frame_stops(
    tmp_path: Path, registry: Path, broker: Mosquitto
) -> None:
    run = frame(tmp_path, "mq")
    bridge = Bridge(run, broker.port)
    try:
        with MqttWatch(broker.port, "pipeline/mq/#") as watch:
            first = watch.wait_for("pipeline/mq/double", lambda m: m["records_in"] > 0)
            later = watch.wait_for(
                "pipeline/mq/double", lambda m: m["records_in"] > first.payload["records_in"]
            )
        figures = later.payload
        assert figures["frame"] == "mq" and figures["stage"] == "double"
        assert figures["alive"] == figures["desired"] == 1
        assert figures["records_out"] > 0 and figures["rate_in"] > 0
        for key in ("backlog", "busy", "cpu", "rss", "errors", "p50", "p99", "progress"):
            assert key in figures, key
        assert not later.retain, "stage figures are not retained"

        # a client that comes later gets the frame's status from the broker at once
        with MqttWatch(broker.port, "pipeline/mq/status") as late:
            status = late.wait_for("pipeline/mq/status", timeout=3)
            assert status.retain
            assert status.payload["state"] == "running"
            assert status.payload["stages"] == ["src", "double", "sink"]
            assert status.payload["uptime"] > 0 and status.payload["errors"] == []

            stop(run)
            assert late.wait_for("pipeline/mq/status", is_gone, timeout=15)
        assert bridge.wait() == ExitCode.OK, bridge.stderr
        assert "frame stopped" in bridge.stderr
        with MqttWatch(broker.port, "pipeline/mq/status") as after:
            gone = after.wait_for("pipeline/mq/status", timeout=3)
            assert gone.retain and is_gone(gone.payload)
    finally:
        bridge.close()


def test_control_with_the_secret_scales_and_pauses_and_without_it_changes_nothing(
    tmp_path: Path, registry: Path, broker: Mosquitto
) -> None:
    run = frame(tmp_path, "mc")
    bridge = Bridge(run, broker.port, env={"PIPELINE_MQTT_SECRET": SECRET})
    try:
        with MqttWatch(broker.port, "pipeline/mc/#") as watch:
            watch.wait_for("pipeline/mc/status")  # the bridge is up, its control subscribed

            def ask(rid: int, request: dict[str, Any]) -> dict[str, Any]:
                watch.publish("pipeline/mc/control", {"id": rid, **request})
                reply = watch.wait_for("pipeline/mc/control/reply", lambda m: m["id"] == rid)
                assert isinstance(reply.payload, dict)
                return reply.payload

            scale = {"command": "scale", "args": {"stage": "double", "replicas": 2}}
            reply = ask(1, {"secret": SECRET, **scale})
            assert reply["status"] == "ok", reply
            assert reply["result"] == {"stage": "double", "from": 1, "to": 2}
            run.frame.wait_scaled("double", 2, timeout=15)

            reply = ask(2, {"secret": SECRET, "command": "pause"})
            assert reply == {"id": 2, "status": "ok", "code": 0, "result": {"paused": True}}
            assert run.frame.status()["state"] == "paused"

            # a wrong secret, or none, is refused and nothing reaches the frame
            wrong = ask(3, {"secret": "guess", "command": "resume"})
            assert wrong["status"] == "error" and wrong["code"] == ControlCode.UNAUTHORIZED
            assert "secret" in wrong["reason"]
            missing = ask(4, scale | {"args": {"stage": "double", "replicas": 3}})
            assert missing["code"] == ControlCode.UNAUTHORIZED, missing
            assert SECRET not in str(wrong) + str(missing)
            time.sleep(1.0)
            st = run.frame.status()
            assert st["state"] == "paused"
            assert st["stages"]["double"]["desired"] == 2 and st["rescale"] is None

            # what changes nothing needs no secret; what is not a request is told so
            status = ask(5, {"command": "status"})
            assert status["status"] == "ok" and status["result"]["frame"] == "mc"
            watch.publish("pipeline/mc/control", b"pause, please")
            bad = watch.wait_for("pipeline/mc/control/reply", lambda m: m["id"] is None)
            assert bad.payload["code"] == ControlCode.BAD_REQUEST

            assert ask(6, {"secret": SECRET, "command": "resume"})["result"] == {"paused": False}
            stop(run)
        assert bridge.wait() == ExitCode.OK, bridge.stderr
        assert "refused" in bridge.stderr and SECRET not in bridge.stderr
    finally:
        bridge.close()


def test_without_a_secret_the_control_topic_is_ignored(
    tmp_path: Path, registry: Path, broker: Mosquitto
) -> None:
    run = frame(tmp_path, "quiet")
    bridge = Bridge(run, broker.port)
    try:
        with MqttWatch(broker.port, "pipeline/quiet/#") as watch:
            watch.wait_for("pipeline/quiet/status")
            for secret in (SECRET, "", None):
                watch.publish("pipeline/quiet/control",
                              {"id": 1, "secret": secret, "command": "pause"})  # fmt: skip
            time.sleep(2.0)
            assert watch.on("pipeline/quiet/control/reply") == []
            assert run.frame.status()["state"] == "running"
            stop(run)
        assert bridge.wait() == ExitCode.OK, bridge.stderr
        assert "control" not in bridge.stderr
    finally:
        bridge.close()


def test_the_bridge_reconnects_when_the_broker_restarts(
    tmp_path: Path, registry: Path, broker: Mosquitto
) -> None:
    run = frame(tmp_path, "again")
    bridge = Bridge(run, broker.port)
    try:
        with MqttWatch(broker.port, "pipeline/again/#") as watch:
            watch.wait_for("pipeline/again/double")
            broker.stop()
            time.sleep(1.0)
            broker.start()
            restarted = time.time()
            later = [m for m in watch.on("pipeline/again/double") if m.time > restarted]
            deadline = time.monotonic() + 10
            while not later and time.monotonic() < deadline:
                time.sleep(0.2)
                later = [m for m in watch.on("pipeline/again/double") if m.time > restarted]
            assert later, "no figures after the broker came back"
            stop(run)
            watch.wait_for("pipeline/again/status", is_gone, timeout=15)
        assert bridge.wait() == ExitCode.OK, bridge.stderr
        assert "lost the MQTT broker" in bridge.stderr
        assert "reconnected" in bridge.stderr
    finally:
        bridge.close()


def test_an_unreachable_broker_is_reported_at_once(tmp_path: Path, registry: Path) -> None:
    run = frame(tmp_path, "nobroker")
    try:
        port = free_port()  # nothing listens there
        bridge = Bridge(run, port)
        t0 = time.monotonic()
        code = bridge.wait(timeout=10)
        assert code == ExitCode.FAILED, bridge.stderr
        assert time.monotonic() - t0 < 10
        assert f"cannot connect to the MQTT broker at {HOST}:{port}" in bridge.stderr
        assert "--broker" in bridge.stderr
        assert "Traceback" not in bridge.stderr
    finally:
        stop(run)


def test_a_malformed_broker_address_is_a_usage_error(tmp_path: Path, registry: Path) -> None:
    proc = start_cli("mqtt", "--broker", "localhost:mqtt")
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == ExitCode.USAGE
    assert "--broker 'localhost:mqtt'" in err and "port" in err
