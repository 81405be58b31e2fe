"""``pipeline keys``: make a frame's CURVE keys, to share between the hosts of a frame."""

from __future__ import annotations

import argparse
import sys
from typing import Any

KEYS_EPILOG = """\
Makes, in DIR (new or empty; owner-only), the frame's server certificate (server.key and
server.key_secret: every tcp socket of the frame serves with it), its client certificate
(client.key, client.key_secret: its processes connect with it), one more client
certificate per --client NAME, and authorized/ with the public key of each client: only
those may connect. Point a topology at it with 'keys: DIR' (and transport: tcp); copy a
tool's or host's NAME.key into authorized/ to let it in, remove it to shut it out (asked
at every connection). Never copy the *_secret files anywhere but the hosts that need them.

examples:
  pipeline keys /etc/pipeline/keys
  pipeline keys /etc/pipeline/keys --client monitor --client host-b
"""


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "keys",
        help="make a frame's CURVE keys (for transport: tcp across hosts)",
        description="Make a frame's CURVE keys: a server certificate, client certificates "
        "and the folder of authorized public keys.",
        epilog=KEYS_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("dir", metavar="DIR", help="where to write them (new or empty)")
    p.add_argument("--client", action="append", default=[], metavar="NAME",
                   help="one more authorized client certificate, NAME.key (repeat it)")  # fmt: skip
    p.set_defaults(handler=cmd_keys)


def cmd_keys(args: argparse.Namespace) -> int:
    from pipeline.security import make_keys  # noqa: PLC0415 - zmq, only when it runs

    bad = [n for n in args.client if not n.isidentifier() or n in ("server", "client")]
    if bad:
        print(f"pipeline keys: client names must be words other than server and client, "
              f"got {', '.join(bad)}", file=sys.stderr)  # fmt: skip
        return 2
    try:
        keys = make_keys(args.dir, tuple(args.client))
    except (OSError, ValueError) as exc:
        print(f"pipeline keys: {exc}", file=sys.stderr)
        return 2
    names = ", ".join(f"{n}.key" for n in ("client", *args.client))
    print(f"{keys.folder}: server.key, {names} (and their _secret files); authorized: {names}")
    return 0
