"""``pipeline ps|status|scale|pause|resume|stop|kill``: operate a running frame.

Building these parsers imports neither zmq nor rich: a handler imports the client
(``pipeline.remote``) and the formatting (``pipeline.progress``) it needs when it runs.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import TYPE_CHECKING, Any

from pipeline.errors import ControlCode, ControlError, ExitCode

if TYPE_CHECKING:
    from pipeline.remote import RemoteFrame

FRAME_HELP = (
    "the frame: its name, pid or run directory (default: the only frame running on this "
    "machine; see pipeline ps)"
)

CONTROL_EPILOG = """\
Every running frame answers requests on a control socket: an owner-only unix socket in its
run directory (with transport: tcp, a tcp port that requires CURVE keys). The reply to a
request that cannot be carried out says why, and the command exits 4.

examples:
  pipeline ps                         the frames running on this machine
  pipeline status                     every stage: replicas, rates, backlog, latency, errors
  pipeline scale usage 4 --wait       run 4 replicas of stage 'usage', wait until they run
  pipeline pause; pipeline resume     sources stop emitting / emit again
  pipeline stop                       graceful: sources stop, everything in flight drains
  pipeline kill                       at once (work in flight is lost; the run exits 1)
  pipeline monitor                    a live view with keys to scale, pause and resume
"""

#: exit code of a control command the frame refused or could not be reached for
REFUSED_EXIT = 4


def _frame_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--frame", "-f", metavar="FRAME", help=FRAME_HELP)
    p.add_argument(
        "--timeout", type=float, default=5.0, help="seconds to wait for an answer (default: 5)"
    )


def add_parsers(sub: Any) -> None:
    fmt = argparse.RawDescriptionHelpFormatter
    ps = sub.add_parser(
        "ps",
        help="list the frames running on this machine",
        description="List the frames running on this machine (yours).",
        epilog=CONTROL_EPILOG,
        formatter_class=fmt,
    )
    ps.add_argument("--json", action="store_true", help="print JSON records")
    ps.set_defaults(handler=cmd_ps)

    status = sub.add_parser(
        "status",
        help="the live figures of a running frame",
        description="Print a running frame's state and, per stage, replicas alive/desired, "
        "records in and out, rates, backlog, busy share, batch latency p50/p99, errors, CPU "
        "and memory.",
        epilog=CONTROL_EPILOG,
        formatter_class=fmt,
    )
    _frame_arg(status)
    status.add_argument("--json", action="store_true", help="print the status as JSON")
    status.set_defaults(handler=cmd_status)

    scale = sub.add_parser(
        "scale",
        help="change a stage's replica count while it runs",
        description="Change a stage's replica count while data flows. Nothing is lost or "
        "duplicated: removed replicas finish what they hold; a keyed stage moves its key "
        "partitions, with their state, to their new owners. Sources, broadcast stages and "
        "stages declared scalable: false refuse, saying why.",
        epilog=CONTROL_EPILOG,
        formatter_class=fmt,
    )
    scale.add_argument("stage", help="the stage to scale")
    scale.add_argument("replicas", type=int, help="the replica count wanted")
    scale.add_argument(
        "--wait", action="store_true", help="wait until the stage runs that many replicas"
    )
    _frame_arg(scale)
    scale.set_defaults(handler=cmd_scale)

    monitor = sub.add_parser(
        "monitor",
        help="a live view of a running frame, with keys to scale, pause and resume",
        description="A live view of a running frame, refreshed every second: per stage, "
        "replicas alive/desired, records/s in and out, backlog, busy share, batch latency "
        "p50/p99, errors, CPU and memory; below, the replicas of the selected stage. Fits an "
        "80x24 terminal. Keys: up/down (or j/k) select a stage, + and - scale it by one "
        "replica, p pause, r resume, S stop the frame, q quit the monitor (the frame goes "
        "on). When the frame stops, the monitor says so and exits.",
        epilog=CONTROL_EPILOG,
        formatter_class=fmt,
    )
    _frame_arg(monitor)
    monitor.set_defaults(handler=cmd_monitor)

    for verb, text in (
        ("pause", "sources stop emitting; in-flight work drains"),
        ("resume", "sources emit again"),
        ("stop", "graceful stop: sources stop, everything in flight drains, reports are written"),
        ("kill", "stop at once: work in flight is lost and the run exits 1"),
    ):
        p = sub.add_parser(
            verb, help=text, description=text[0].upper() + text[1:] + ".",
            epilog=CONTROL_EPILOG, formatter_class=fmt,
        )  # fmt: skip
        _frame_arg(p)
        p.set_defaults(handler=cmd_verb, verb=verb)


def _connect(args: argparse.Namespace) -> RemoteFrame:
    from pipeline.remote import RemoteFrame  # noqa: PLC0415 - zmq, only for a command that asks

    return RemoteFrame.find(args.frame, timeout=args.timeout)


def _refused(exc: ControlError, command: str) -> int:
    print(f"pipeline {command}: {exc.reason} (code {int(exc.code)} {exc.code.name})",
          file=sys.stderr)  # fmt: skip
    return REFUSED_EXIT if exc.code != ControlCode.BAD_REQUEST else ExitCode.USAGE


def cmd_ps(args: argparse.Namespace) -> int:
    from pipeline import registry  # noqa: PLC0415
    from pipeline.progress import clock  # noqa: PLC0415

    frames = registry.running()
    if args.json:
        print(json.dumps(frames, indent=2))
        return ExitCode.OK
    if not frames:
        print("no frame is running")
        return ExitCode.OK
    print(f"{'FRAME':<16} {'PID':>7} {'UP':>8}  {'STAGES':<30} RUN DIR")
    now = time.time()
    for f in frames:
        stages = ",".join(f.get("stages", []))
        print(f"{f['frame']:<16} {f['pid']:>7} {clock(now - f.get('started', now)):>8}  "
              f"{stages[:30]:<30} {f.get('run_dir', '')}")  # fmt: skip
    return ExitCode.OK


def format_status(st: dict[str, Any]) -> list[str]:
    """A plain-text table of a status (``pipeline status``)."""
    from pipeline.progress import amount, clock  # noqa: PLC0415

    lines = [
        f"frame {st['frame']} (pid {st['pid']}): {st['state']}, up {clock(st['uptime'])}, "
        f"run {st['run_id']}"
    ]
    if st.get("rescale"):
        r = st["rescale"]
        lines.append(f"scaling {r['stage']} {r['from']} -> {r['to']}: {r['phase']}")
    lines.append(
        f"{'STAGE':<14} {'REPL':>5} {'IN':>9} {'OUT':>9} {'IN/s':>8} {'OUT/s':>8} "
        f"{'BACKLOG':>7} {'BUSY':>5} {'P50':>7} {'P99':>7} {'ERR':>4} {'CPU':>5} {'MEM':>9}"
    )
    for name, s in st["stages"].items():
        repl = "end" if s["ended"] else f"{s['alive']}/{s['desired']}"
        lines.append(
            f"{name[:14]:<14} {repl:>5} {amount(s['records_in'], ''):>9} "
            f"{amount(s['records_out'], ''):>9} {amount(s['rate_in'], ''):>8} "
            f"{amount(s['rate_out'], ''):>8} {s['backlog']:>7} {s['busy']:>5.0%} "
            f"{_ms(s['p50']):>7} {_ms(s['p99']):>7} {s['errors']:>4} {s['cpu']:>5.0%} "
            f"{amount(s['rss'], 'bytes'):>9}"
        )
    for h in st.get("hosts", []):
        group = f" (group {h['group']})" if h["group"] else ""
        lines.append(f"host {h['name']}{group}: {h['state']}, {h['workers']} worker(s)")
    for e in st.get("errors", []):
        lines.append(f"error: {e}")
    return lines


def _ms(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds * 1000:.1f}ms" if seconds < 1 else f"{seconds:.2f}s"


def cmd_status(args: argparse.Namespace) -> int:
    try:
        frame = _connect(args)
        st = frame.status()
    except ControlError as exc:
        return _refused(exc, "status")
    if args.json:
        print(json.dumps(st, indent=2))
    else:
        print("\n".join(format_status(st)))
    return ExitCode.OK


def cmd_scale(args: argparse.Namespace) -> int:
    try:
        frame = _connect(args)
        result = frame.request("scale", stage=args.stage, replicas=args.replicas)
        print(f"{frame.name}: stage {result['stage']}: {result['from']} -> {result['to']} replicas")
        if args.wait:
            t0 = time.monotonic()
            frame.wait_scaled(args.stage, args.replicas)
            print(f"{frame.name}: stage {args.stage} runs {args.replicas} replicas "
                  f"({time.monotonic() - t0:.1f}s)")  # fmt: skip
    except ControlError as exc:
        return _refused(exc, "scale")
    return ExitCode.OK


def cmd_verb(args: argparse.Namespace) -> int:
    try:
        frame = _connect(args)
        result = frame.request(args.verb)
    except ControlError as exc:
        return _refused(exc, args.verb)
    said = {"pause": "paused", "resume": "resumed", "stop": "stopping (draining)",
            "kill": "killed"}[args.verb]  # fmt: skip
    print(f"{frame.name} (pid {frame.pid}): {said}")
    del result
    return ExitCode.OK


def cmd_monitor(args: argparse.Namespace) -> int:
    from pipeline.monitor import Monitor  # noqa: PLC0415 - rich's live screen, only here

    try:
        frame = _connect(args)
        said = Monitor(frame).run()
    except ControlError as exc:
        return _refused(exc, "monitor")
    except KeyboardInterrupt:
        said = "monitor closed"
    print(said)
    return ExitCode.OK
