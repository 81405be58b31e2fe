"""The per-user registry of running frames (``pipeline ps`` and ``--frame``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipeline import registry as reg
from pipeline.errors import ControlCode, ControlError, UsageError


def test_records_of_live_frames_are_listed_and_dead_ones_dropped(registry: Path) -> None:
    registry.mkdir()
    (registry / "1.json").write_text('{"frame": "gone", "pid": 999999999, "api": "x"}')
    (registry / "2.json").write_text("not json")
    reg.register({"frame": "here", "pid": os.getpid(), "api": "ipc://x", "started": 1.0})
    assert [r["frame"] for r in reg.running()] == ["here"]
    assert not (registry / "1.json").exists()  # a dead frame's record is removed
    assert reg.find(None)["pid"] == os.getpid()
    assert reg.find("here")["frame"] == "here"
    assert reg.find(str(os.getpid()))["frame"] == "here"
    with pytest.raises(ControlError) as err:
        reg.find("elsewhere")
    assert err.value.code == ControlCode.UNREACHABLE
    assert "named 'elsewhere'" in err.value.reason
    reg.unregister(os.getpid())
    with pytest.raises(ControlError) as err:
        reg.find(None)
    assert "no frame is running" in err.value.reason


def test_a_registry_folder_of_another_user_is_refused(
    registry: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry.mkdir()
    uid = os.getuid()
    monkeypatch.setattr(os, "getuid", lambda: uid + 1)
    with pytest.raises(UsageError, match="belongs to another user; set PIPELINE_REGISTRY"):
        reg.register({"frame": "f", "pid": os.getpid()})
