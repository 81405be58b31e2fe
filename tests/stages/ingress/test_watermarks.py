"""Per-key delivered times: advanced only by acknowledged windows, never past a failed or
waiting one, and saved atomically."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from stages.ingress.watermarks import HORIZON, Watermarks

T0 = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)


def window(key: str, day: int, status: str = "ok", **extra: Any) -> dict[str, Any]:
    return {"key": key, "since": (T0 + day * DAY).isoformat(),
            "until": (T0 + (day + 1) * DAY).isoformat(), "status": status, **extra}  # fmt: skip


def test_a_first_gathering_reaches_back_to_the_horizon_and_no_further() -> None:
    w = Watermarks({})
    assert w.since("k", T0) == T0 - HORIZON
    w.entries["k"] = T0 - 100 * DAY  # delivered long ago
    assert w.since("k", T0) == T0 - HORIZON


def test_a_delivered_window_moves_its_key_and_the_next_one_starts_there() -> None:
    w = Watermarks({})
    assert w.delivered([window("k", 0)]) == ["k"]
    assert w.since("k", T0 + 5 * DAY) == T0 + DAY


def test_a_waiting_tarball_is_not_gathered_again_nor_moves_its_key() -> None:
    w = Watermarks({"entries": {"k": T0.isoformat()}})
    waiting = [window("k", 0), window("k", 1)]
    assert w.since("k", T0 + 5 * DAY, waiting) == T0 + 2 * DAY  # after what is packaged
    assert w.entries["k"] == T0  # delivered: unchanged until acknowledged
    # the later window arrives first: it cannot move the key past the one still waiting
    assert w.delivered([window("k", 1)], waiting=[window("k", 0)]) == []
    assert w.delivered([window("k", 0)], waiting=[]) == ["k"]
    assert w.entries["k"] == T0 + DAY


def test_a_failed_window_holds_its_key_back_and_is_gathered_again() -> None:
    w = Watermarks({"entries": {"k": T0.isoformat(), "k_full": T0.isoformat()}})
    gathering = [window("k", 0), window("k", 1, "failed"), window("k", 2)]
    w.gathered(gathering)
    assert "k_full" not in w.entries  # the next gathering of k is a full one again
    moved = w.delivered(gathering)
    assert moved == ["k"] and w.entries["k"] == T0 + DAY  # not past day 1, which failed
    assert w.since("k", T0 + 9 * DAY) == T0 + DAY  # day 1 (and day 2 again) next time
    w.gathered([window("k", 1), window("k", 2)])  # gathered again from the failure: clear
    assert w.failed == {}
    w.delivered([window("k", 1), window("k", 2)])
    assert w.entries["k"] == T0 + 3 * DAY


def test_other_keys_are_not_held_back_by_a_failure() -> None:
    w = Watermarks({})
    gathering = [window("a", 0, "failed"), window("b", 0)]
    w.gathered(gathering)
    assert w.delivered(gathering) == ["b"]
    assert "a" not in w.entries


def test_the_state_survives_a_save_and_load(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    w = Watermarks.load(path)
    w.gathered([window("a", 0, "failed")])
    w.delivered([window("b", 0)])
    w.last_gather = T0
    w.save()
    again = Watermarks.load(path)
    assert (again.entries, again.failed, again.last_gather) == (w.entries, w.failed, T0)
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_a_damaged_state_says_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text("{not json")
    try:
        Watermarks.load(path)
    except ValueError as exc:
        assert "state.json" in str(exc) and "delete it" in str(exc)
    else:
        raise AssertionError("a damaged state was read")
