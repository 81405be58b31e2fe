"""``pipeline worker``: run the stages a topology places on this host, for its frame."""

from __future__ import annotations

import argparse
import logging
import sys
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

Hosts not known in advance (the nodes of a batch allocation, pods) join a group instead:
'groups: [pool]' in the topology and 'hosts: [pool]' on a stage put its replicas on the
members of pool, the least loaded first; each member runs

  pipeline worker TOPOLOGY --group pool [--name NAME] [--address ADDRESS]

under a name unique in the frame (default: its host name), its workers reached at
ADDRESS (default: the address its host name resolves to). 'groups: {pool: 3}' makes the
first replicas wait for 3 members, so that they spread over the hosts started together.
A stage with 'replicas: members' runs one replica per member: it grows as members join,
and a member stopped with SIGTERM first has its replica drained and retired (stop the
newest member first: a stage shrinks from its highest-numbered replica). With --stay,
the worker waits for the next frame when one ends (a standing pool: systemd, Kubernetes).

examples:
  pipeline keys /etc/pipeline/keys                    # once; copy the folder to every host
  pipeline run wrstat.yaml                            # on the coordinator
  pipeline worker wrstat.yaml --host b                # on host b
  pipeline worker wrstat.yaml --group pool --coordinator head1:7700 --stay
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
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--host", help="this host's name in the topology's hosts")
    where.add_argument("--group", help="join as a member of this group of the topology")
    p.add_argument("--name", help="a group member's name, unique in the frame "
                   "(default: this machine's host name)")  # fmt: skip
    p.add_argument("--address", help="where this host's workers are reached (default: from "
                   "the topology for --host, this host name's address for --group)")  # fmt: skip
    p.add_argument("--coordinator", metavar="HOST[:PORT]",
                   help="where to join (default: the topology's coordinator and port)")  # fmt: skip
    p.add_argument("--stay", action="store_true",
                   help="when a frame ends or its coordinator is lost, wait for the next "
                   "one")  # fmt: skip
    p.add_argument("--ready-file", metavar="PATH",
                   help="a file present while this host runs a replica of a frame (for a "
                   "readiness probe)")  # fmt: skip
    p.add_argument("--join-timeout", type=float, default=120.0,
                   help="seconds to wait for the coordinator to answer (default 120; 0: "
                   "for ever)")  # fmt: skip
    p.set_defaults(handler=cmd_worker)


def cmd_worker(args: argparse.Namespace) -> int:
    from pipeline.agent import HostAgent  # noqa: PLC0415 - zmq, only when it runs
    from pipeline.cli import _load  # noqa: PLC0415

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s",
                        datefmt="%H:%M:%S")  # fmt: skip
    if args.name and not args.group:
        print("pipeline worker: --name is for a group member (--group); a host's name is "
              "--host", file=sys.stderr)  # fmt: skip
        return 2
    agent = HostAgent(_load(args), args.host or args.name, args.join_timeout,
                      group=args.group, address=args.address, coordinator=args.coordinator,
                      stay=args.stay, ready_file=args.ready_file)  # fmt: skip
    return agent.run()
