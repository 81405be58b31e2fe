"""A frame's status (``pipeline.status``) in the Prometheus text exposition format, served
by the web monitor on ``/metrics``.

Every sample carries ``frame`` and, per stage, ``stage`` labels (per host that joined the
frame, ``host`` and ``group``)::

    >>> text = exposition({"frame": "f", "state": "running", "uptime": 3.0,
    ...     "stages": {"s": {"records_in": 5}}}, up=True)
    >>> 'pipeline_records_in_total{frame="f",stage="s"} 5' in text.splitlines()
    True
"""

from __future__ import annotations

from typing import Any

#: the Content-Type of the text format
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

#: (metric, type, help, status field); one sample per stage
STAGE_METRICS: tuple[tuple[str, str, str, str], ...] = (
    ("pipeline_records_in_total", "counter", "Records a stage received.", "records_in"),
    ("pipeline_records_out_total", "counter", "Records a stage emitted.", "records_out"),
    ("pipeline_rate_in_records_per_second", "gauge",
     "Records a stage received per second, over the last status interval.", "rate_in"),
    ("pipeline_rate_out_records_per_second", "gauge",
     "Records a stage emitted per second, over the last status interval.", "rate_out"),
    ("pipeline_backlog_batches", "gauge",
     "Batches waiting for a stage, at its senders or held by its replicas.", "backlog"),
    ("pipeline_busy_ratio", "gauge",
     "Share of time a stage's replicas spent in stage code (their average; 1 = every "
     "replica always busy).", "busy"),
    ("pipeline_replicas_desired", "gauge", "Replicas a stage should run.", "desired"),
    ("pipeline_replicas_alive", "gauge", "Replicas of a stage running now.", "alive"),
    ("pipeline_cpu_ratio", "gauge",
     "CPU a stage's replicas use, in cores (summed).", "cpu"),
    ("pipeline_rss_bytes", "gauge", "Resident memory of a stage's replicas (summed).", "rss"),
    ("pipeline_errors_total", "counter", "Batches a stage failed to process.", "errors"),
)  # fmt: skip

LATENCY = "pipeline_batch_latency_seconds"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(**labels: str) -> str:
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items()) + "}"


def _number(value: Any) -> str:
    return repr(float(value)) if isinstance(value, float) else str(int(value))


def exposition(status: dict[str, Any] | None, up: bool, frame: str | None = None) -> str:
    """The metrics of ``status`` (the newest one; None before the first arrives); ``up``
    says whether the frame still runs. ``frame`` names it when ``status`` is None."""
    name = str((status or {}).get("frame", frame or "?"))
    lines = [
        "# HELP pipeline_frame_up 1 while the frame runs, 0 once it has stopped.",
        "# TYPE pipeline_frame_up gauge",
        f"pipeline_frame_up{_labels(frame=name)} {int(up)}",
    ]
    if status is None:
        return "\n".join(lines) + "\n"
    lines += [
        "# HELP pipeline_frame_uptime_seconds Seconds since the frame started.",
        "# TYPE pipeline_frame_uptime_seconds gauge",
        f"pipeline_frame_uptime_seconds{_labels(frame=name)} {_number(status.get('uptime', 0.0))}",
        "# HELP pipeline_frame_state 1 for the frame's state: running, paused, stopping.",
        "# TYPE pipeline_frame_state gauge",
        f"pipeline_frame_state{_labels(frame=name, state=str(status.get('state', '?')))} 1",
    ]
    stages: dict[str, dict[str, Any]] = status.get("stages", {})
    for metric, kind, text, field in STAGE_METRICS:
        lines += [f"# HELP {metric} {text}", f"# TYPE {metric} {kind}"]
        for stage, s in stages.items():
            if s.get(field) is not None:
                lines.append(f"{metric}{_labels(frame=name, stage=stage)} {_number(s[field])}")
    lines += [
        f"# HELP {LATENCY} Time a stage took to process one batch, median and 99th "
        "percentile over the last status interval.",
        f"# TYPE {LATENCY} gauge",
    ]
    for stage, s in stages.items():
        for quantile, field in (("0.5", "p50"), ("0.99", "p99")):
            if s.get(field) is not None:
                labels = _labels(frame=name, stage=stage, quantile=quantile)
                lines.append(f"{LATENCY}{labels} {_number(float(s[field]))}")
    hosts: list[dict[str, Any]] = status.get("hosts", [])
    if hosts:
        lines += [
            "# HELP pipeline_host_up 1 while a host that joined the frame is in it (joined or "
            "leaving), 0 once it is lost or has left.",
            "# TYPE pipeline_host_up gauge",
        ]
        lines += [f"pipeline_host_up{_host_labels(name, h)} "
                  f"{int(h['state'] in ('joined', 'leaving'))}" for h in hosts]  # fmt: skip
        lines += [
            "# HELP pipeline_host_workers Worker processes of the frame running on a host.",
            "# TYPE pipeline_host_workers gauge",
        ]
        lines += [f"pipeline_host_workers{_host_labels(name, h)} {int(h['workers'])}"
                  for h in hosts]  # fmt: skip
    return "\n".join(lines) + "\n"


def _host_labels(frame: str, host: dict[str, Any]) -> str:
    return _labels(frame=frame, host=str(host["name"]), group=str(host.get("group") or ""))
