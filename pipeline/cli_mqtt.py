"""``pipeline mqtt``: its arguments and its handler, which alone imports the bridge
(``pipeline.mqtt``, with aiomqtt) so that every other command starts without it."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Any

from pipeline.cli_control import FRAME_HELP, REFUSED_EXIT
from pipeline.errors import ControlCode, ControlError, UsageError

#: the broker's port when --broker gives none (``pipeline.mqtt.Broker`` reads it too)
DEFAULT_PORT = 1883
PASSWORD_ENV = "PIPELINE_MQTT_PASSWORD"
SECRET_ENV = "PIPELINE_MQTT_SECRET"

#: the bridge's reconnection delays after the broker dropped it: doubling, up to the maximum
#: (defined here, where the help states the maximum)
BACKOFF_FIRST = 0.5
BACKOFF_MAX = 30.0

MQTT_EPILOG = f"""\
topics (PREFIX is --prefix, FRAME the frame's name):
  PREFIX/FRAME/STAGE          each stage's figures, JSON, once a second (QoS --qos):
                              records_in/out, rate_in/out, backlog, busy, alive, desired,
                              ended, p50, p99, errors, cpu, rss, progress
  PREFIX/FRAME/status         the frame: state, uptime, rescale, errors, stages; retained.
                              {{"state": "gone"}} once the frame or the bridge has stopped
                              (also the bridge's last will)
  PREFIX/FRAME/control        requests, only when a secret is set (see below)
  PREFIX/FRAME/control/reply  the frame's replies, with the request's id

control: off unless a shared secret is set with --secret or ${SECRET_ENV}
(the environment keeps it out of the process list). Then a request is JSON:
  {{"id": 1, "secret": "S", "command": "scale", "args": {{"stage": "usage", "replicas": 3}}}}
and its reply is the frame's ({{"id", "status", "code", "reason" or "result"}}). Without the
right secret only status and commands are answered; anything else is refused with code
{int(ControlCode.UNAUTHORIZED)} (UNAUTHORIZED) and never reaches the frame. With no secret set
the bridge does not subscribe to the control topic at all.

The bridge exits 0 once the frame has stopped (after publishing "gone"). It exits 1 at once
if the broker cannot be reached when it starts; if the broker drops it later it reconnects,
waiting longer each time (up to {BACKOFF_MAX:g}s).

examples:
  pipeline mqtt                                  the only running frame, broker localhost:1883
  pipeline mqtt --frame wrstat --broker mqtt.example.org:1883 --prefix site/pipeline
  PIPELINE_MQTT_SECRET=s3cret pipeline mqtt      also take control requests
  mosquitto_sub -v -t 'pipeline/#'               watch what is published
  mosquitto_pub -t pipeline/wrstat/control \\
      -m '{{"id": 1, "secret": "s3cret", "command": "pause"}}'
"""


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "mqtt",
        help="publish a running frame's status to an MQTT broker (and take control from it)",
        description="Publish a running frame's status to an MQTT broker once a second: one\n"
        "topic per stage and a retained frame status. With a shared secret it also takes\n"
        "control requests (scale, pause, resume, stop, ...) from the broker; with none it\n"
        "subscribes to nothing. Runs until the frame stops.",
        epilog=MQTT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--frame", "-f", metavar="FRAME", help=FRAME_HELP)
    p.add_argument(
        "--broker",
        default=f"localhost:{DEFAULT_PORT}",
        metavar="HOST[:PORT]",
        help=f"the MQTT broker (default: localhost:{DEFAULT_PORT})",
    )
    p.add_argument("--username", help="user name at the broker (default: none)")
    p.add_argument(
        "--password", help=f"password at the broker (default: ${PASSWORD_ENV}, else none)"
    )
    p.add_argument(
        "--prefix", default="pipeline", help="first level of every topic (default: pipeline)"
    )
    p.add_argument(
        "--qos",
        type=int,
        choices=[0, 1, 2],
        default=0,
        help="QoS of the per-stage figures (default: 0; the frame status is always QoS 1)",
    )
    p.add_argument(
        "--secret",
        help=f"shared secret that control requests must carry (default: ${SECRET_ENV}); "
        "without one the bridge takes no control requests and subscribes to nothing",
    )
    p.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="how much the bridge logs (default: info)",
    )
    p.set_defaults(handler=cmd_mqtt)


def cmd_mqtt(args: argparse.Namespace) -> int:
    import asyncio  # noqa: PLC0415 - the bridge's libraries, only here

    from pipeline.mqtt import API_TIMEOUT, Bridge, Broker  # noqa: PLC0415
    from pipeline.remote import RemoteFrame  # noqa: PLC0415

    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()),
        format="%(asctime)s %(levelname)s %(message)s",
        datefmt="%H:%M:%S",
    )
    broker = Broker.parse(args.broker)
    prefix = args.prefix.strip("/")
    if not prefix or any(c in prefix for c in "+#"):
        raise UsageError(f"--prefix {args.prefix!r}: a topic level without + or #, e.g. pipeline")
    secret = args.secret if args.secret is not None else os.environ.get(SECRET_ENV)
    if secret == "":
        raise UsageError(f"the control secret (--secret or ${SECRET_ENV}) is empty")
    password = args.password if args.password is not None else os.environ.get(PASSWORD_ENV)
    try:
        frame = RemoteFrame.find(args.frame, timeout=API_TIMEOUT)
    except ControlError as exc:
        print(f"pipeline mqtt: {exc.reason}", file=sys.stderr)
        return REFUSED_EXIT
    bridge = Bridge(frame, broker, prefix, args.qos, secret, args.username, password)
    try:
        return asyncio.run(bridge.run())
    finally:
        frame.close()
