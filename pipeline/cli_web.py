"""``pipeline web``: its arguments and its handler, which alone imports the server
(``pipeline.web``, with aiohttp) so that every other command starts without it."""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from typing import Any

from pipeline.cli_control import FRAME_HELP, REFUSED_EXIT
from pipeline.errors import ControlError, ExitCode, UsageError

#: where the server listens unless --bind says otherwise (``pipeline.web``'s default too)
DEFAULT_PORT = 8765
TOKEN_ENV = "PIPELINE_WEB_TOKEN"

WEB_EPILOG = f"""\
The page shows the graph of stages (replicas alive/desired, records/s in and out, backlog,
busy share), a sparkline of each stage's rate over the last two minutes, a table of every
figure, and buttons to scale stages, pause, resume and stop. Anyone who can reach the port
can watch; the buttons need the token: open the URL printed at start (it holds the token,
which the page keeps for the tab), or type it into the page's token field.

The token is --token, else ${TOKEN_ENV}, else a random one printed at start. The server
listens on 127.0.0.1 unless --bind says otherwise; it speaks plain HTTP, so put it behind
a TLS proxy before listening on other addresses. It exits (0) a moment after the frame
stops.

Also: GET /api/status (JSON), GET /api/events (server-sent events), POST /api/control
({{"command": "scale", "args": {{"stage": S, "replicas": N}}}}, Authorization: Bearer
TOKEN), GET /metrics (Prometheus).

examples:
  pipeline web                        watch the only frame running, on port {DEFAULT_PORT}
  pipeline web --frame wrstat --bind 127.0.0.1:0       a free port
  {TOKEN_ENV}=s3cret pipeline web --bind 0.0.0.0:8080
  curl -s localhost:{DEFAULT_PORT}/metrics
  curl -s -H "Authorization: Bearer $TOKEN" -d '{{"command": "pause"}}' \\
      localhost:{DEFAULT_PORT}/api/control
"""


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "web",
        help="a web page that shows a running frame live and operates it",
        description="Serve a web page that shows a running frame live (graph, rates, "
        "backlog, latency, memory) and operates it (scale, pause, resume, stop), with "
        "JSON, server-sent events and Prometheus metrics alongside.",
        epilog=WEB_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--frame", "-f", metavar="FRAME", help=FRAME_HELP)
    p.add_argument(
        "--bind",
        default=f"127.0.0.1:{DEFAULT_PORT}",
        metavar="HOST:PORT",
        help=f"where to listen (default: 127.0.0.1:{DEFAULT_PORT}; port 0: a free port)",
    )
    p.add_argument(
        "--token",
        help=f"the token the controls need (default: ${TOKEN_ENV}, else a random one)",
    )
    p.add_argument(
        "--timeout", type=float, default=5.0, help="seconds to wait for the frame's answers"
    )
    p.set_defaults(handler=cmd_web)


def parse_bind(text: str) -> tuple[str, int]:
    """``HOST:PORT``, ``HOST``, ``:PORT`` or ``PORT`` (``[::1]:8080`` for IPv6)."""
    host, port = "127.0.0.1", str(DEFAULT_PORT)
    if text.isdigit():
        port = text
    elif text.startswith("["):
        inside, _, rest = text[1:].partition("]")
        host, port = inside, rest.removeprefix(":") or port
    elif text.count(":") == 1:
        host, port = text.split(":")
        host = host or "127.0.0.1"
    else:
        host = text
    if not port.isdigit() or int(port) > 65535 or not host:
        msg = f"--bind takes HOST:PORT (e.g. 127.0.0.1:{DEFAULT_PORT}, or port 0), got {text!r}"
        raise UsageError(msg)
    return host, int(port)


def cmd_web(args: argparse.Namespace) -> int:
    from pipeline.registry import find  # noqa: PLC0415 - the server's libraries, only here
    from pipeline.web import serve  # noqa: PLC0415

    bind = parse_bind(args.bind)
    token = args.token or os.environ.get(TOKEN_ENV) or secrets.token_urlsafe(16)
    try:
        record = find(args.frame)
    except ControlError as exc:
        print(f"pipeline web: {exc.reason}", file=sys.stderr)
        return REFUSED_EXIT
    frame = f"frame '{record.get('frame')}' (pid {record.get('pid')})"

    def ready(address: str) -> None:
        print(f"pipeline web: {frame} at {address}", flush=True)
        if bind[0] not in ("127.0.0.1", "localhost", "::1"):
            print(f"pipeline web: listening on {bind[0]}: anyone who can reach it sees the "
                  "status; the controls need the token", file=sys.stderr)  # fmt: skip

    try:
        serve(record, bind, token, timeout=args.timeout, ready=ready)
    except OSError as exc:
        msg = (f"pipeline web: cannot listen on {args.bind}: {exc.strerror or exc} (choose "
               "another with --bind HOST:PORT, or port 0 for a free one)")  # fmt: skip
        print(msg, file=sys.stderr)
        return ExitCode.FAILED
    return ExitCode.OK
