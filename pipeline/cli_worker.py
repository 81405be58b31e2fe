"""``pipeline worker``: run the stages a topology places on this host, for its frame."""

from __future__ import annotations

import argparse
import logging
from typing import Any

WORKER_EPILOG = """\
A topology may place stages on other hosts: 'hosts' names each host's address,
'coordinator' the host where 'pipeline run' runs, 'port' its control port, and a stage's
'hosts: [b, c]' the hosts its replicas run on, in turn. On each of those hosts, start

  pipeline worker TOPOLOGY --host NAME

with the same topology, variables and keys folder ('keys', made by pipeline keys; every
socket is CURVE-encrypted and authenticated). It joins the coordinator, starts the workers
it is asked for, and ends with the frame. If the coordinator goes silent, it stops its
workers and exits 1; the coordinator takes a silent host's replicas for dead.

examples:
  pipeline keys /etc/pipeline/keys                    # once; copy the folder to every host
  pipeline run wrstat.yaml                            # on the coordinator
  pipeline worker wrstat.yaml --host b                # on host b
"""


def add_parser(sub: Any) -> None:
    from pipeline.cli import _add_topology_args  # noqa: PLC0415 - the shared options

    p = sub.add_parser(
        "worker",
        help="run the stages a topology places on this host (several hosts)",
        description="Join a frame's coordinator and run the stages placed on this host.",
        epilog=WORKER_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_topology_args(p)
    p.add_argument("--host", required=True, help="this host's name in the topology's hosts")
    p.add_argument("--join-timeout", type=float, default=120.0,
                   help="seconds to wait for the coordinator to answer (default 120)")  # fmt: skip
    p.set_defaults(handler=cmd_worker)


def cmd_worker(args: argparse.Namespace) -> int:
    from pipeline.agent import HostAgent  # noqa: PLC0415 - zmq, only when it runs
    from pipeline.cli import _load  # noqa: PLC0415

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s",
                        datefmt="%H:%M:%S")  # fmt: skip
    return HostAgent(_load(args), args.host, args.join_timeout).run()
