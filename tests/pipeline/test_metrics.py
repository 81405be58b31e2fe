"""The Prometheus exposition of a frame's status (``pipeline.metrics``), for frames on one
host and on several."""

from __future__ import annotations

from typing import Any

from pipeline.metrics import exposition

STATUS: dict[str, Any] = {
    "frame": "f", "state": "running", "uptime": 3.0,
    "stages": {"s": {"records_in": 5, "p50": 0.25}},
}  # fmt: skip


def samples(text: str) -> dict[str, str]:
    return dict(line.rsplit(" ", 1) for line in text.splitlines() if not line.startswith("#"))


def test_a_frame_on_one_host_has_no_host_metrics() -> None:
    text = exposition(STATUS, up=True)
    assert samples(text)['pipeline_records_in_total{frame="f",stage="s"}'] == "5"
    assert "pipeline_host_" not in text


def test_each_host_that_joined_is_up_until_lost_or_gone_with_its_workers() -> None:
    hosts = [{"name": "bee", "group": "pool", "state": "joined", "workers": 2},
             {"name": "b", "group": None, "state": "leaving", "workers": 1},
             {"name": "cee", "group": "pool", "state": "lost", "workers": 0},
             {"name": "dee", "group": "pool", "state": "left", "workers": 0}]  # fmt: skip
    got = samples(exposition({**STATUS, "hosts": hosts}, up=True))
    assert got['pipeline_host_up{frame="f",host="bee",group="pool"}'] == "1"
    assert got['pipeline_host_up{frame="f",host="b",group=""}'] == "1"
    assert got['pipeline_host_up{frame="f",host="cee",group="pool"}'] == "0"
    assert got['pipeline_host_up{frame="f",host="dee",group="pool"}'] == "0"
    assert got['pipeline_host_workers{frame="f",host="bee",group="pool"}'] == "2"
    assert got['pipeline_host_workers{frame="f",host="cee",group="pool"}'] == "0"
