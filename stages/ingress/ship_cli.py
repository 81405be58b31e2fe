"""``pipeline ship``: gather reports into tarballs and send them to an ingress service, from
cron or by hand, as the ``ship`` stage does at the end of a run."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import Any

EPILOG = """\
Each registered collector (default: the reports of stages.ingress.collectors) is called
for the window since its data was last delivered; the collections are packaged into
tarballs (./<key>.json|csv, ./config.json, ./data_collection_status.csv, ./manifest.json)
that wait in the outbox until the ingress acknowledges them. Uploads are retried with
backoff on connection errors, timeouts and 5xx; a 4xx is final (the tarball is kept in
<outbox>/refused/). Each upload carries its tarball's SHA-256 as Idempotency-Key, so a
retry never stores a payload twice. One gathering runs at a time.

exit codes: 0 everything delivered; 1 a collector failed or a tarball was refused;
4 some tarballs are still waiting in the outbox (the ingress could not be reached).

examples:
  pipeline ingress-server --store ingress-store &           # somewhere to ship to
  pipeline ship reports                                     # send what reports/ holds
  pipeline ship reports --dry-run                           # build and keep, send nothing
  INGRESS_TOKEN=s3cret pipeline ship reports --auth token \\
      --url https://ingress.example.org/api/ingress/v1/upload
  pipeline ship reports --pending                           # what waits in the outbox
"""

WAITING = 4


def add_parser(sub: Any) -> None:
    from stages.ingress.protocol import CONTENT_TYPE, DEFAULT_URL  # noqa: PLC0415

    p = sub.add_parser(
        "ship",
        help="package reports into tarballs and send them to an ingress service",
        description="Gather the reports into tarballs and ship them to an ingress service.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("report_dir", help="the reports to read (a run's REPORT_DIR)")
    p.add_argument("--url", default=os.environ.get("INGRESS_URL") or DEFAULT_URL,
                   help=f"the upload URL (default: $INGRESS_URL, else {DEFAULT_URL})")  # fmt: skip
    p.add_argument("--outbox", help="where tarballs wait (default: REPORT_DIR/outbox)")
    p.add_argument("--collectors", default="stages.ingress.collectors",
                   help="comma-separated modules that register collectors "
                   "(default: stages.ingress.collectors)")  # fmt: skip
    p.add_argument("--dry-run", action="store_true", help="build and keep, send nothing")
    p.add_argument("--pending", action="store_true",
                   help="list what waits in the outbox and what was sent")  # fmt: skip
    p.add_argument("--auth", default="none",
                   choices=("none", "basic", "token", "cert", "identity"),
                   help="how to prove who we are (basic: --user and $INGRESS_PASSWORD; token: "
                   "$INGRESS_TOKEN; cert: --cert and --key)")  # fmt: skip
    p.add_argument("--user", default="", help="the user name for --auth basic")
    p.add_argument("--cert", default="", help="client certificate (PEM) for --auth cert")
    p.add_argument("--key", default="", help="its private key (PEM)")
    p.add_argument("--ca", default="", help="CA file to check the server against")
    p.add_argument("--content-type", default=CONTENT_TYPE,
                   help="the payload's content type (default: %(default)s)")  # fmt: skip
    p.add_argument("--header", action="append", default=[], metavar="NAME:VALUE",
                   help="an extra request header (repeatable)")  # fmt: skip
    p.add_argument("--concurrency", type=int, default=4, help="uploads at once (default 4)")
    p.add_argument("--timeout", type=float, default=31.0, help="seconds per upload (31)")
    p.add_argument("--attempts", type=int, default=6, help="tries per tarball (default 6)")
    p.add_argument("--deadline", type=float, help="seconds after which no retry starts")
    p.add_argument("--max-data-size", type=int, default=200 * 1048576,
                   help="uncompressed bytes a tarball (default 200 MiB)")  # fmt: skip
    p.set_defaults(handler=ship)


def ship(args: argparse.Namespace) -> int:
    from pathlib import Path  # noqa: PLC0415

    from stages.ingress.outbox import Busy, Outbox  # noqa: PLC0415
    from stages.ingress.package import PackageError  # noqa: PLC0415
    from stages.ingress.registry import RegistryError  # noqa: PLC0415
    from stages.ingress.settings import gatherer  # noqa: PLC0415

    outbox = args.outbox or str(Path(args.report_dir) / "outbox")
    if args.pending:
        box = Outbox(outbox)
        for w in box.pending():
            print(f"waiting  {w.path.name}  {w.meta.get('size', 0):,} bytes  "
                  f"queued {w.meta.get('queued', '?')}")  # fmt: skip
        for line in box.sent():
            print(f"sent     {line['name']}  HTTP {line['status']}  {line['at']}")
        return 0
    headers = {}
    for h in args.header:
        name, sep, value = h.partition(":")
        if not sep or not name.strip():
            print(f"pipeline ship: --header {h!r} is not NAME:VALUE", file=sys.stderr)
            return 2
        headers[name.strip()] = value.strip()
    try:
        g = gatherer(
            outbox, args.url, [m for m in args.collectors.split(",") if m],
            {"mode": args.auth, "user": args.user, "cert": args.cert, "key": args.key,
             "ca": args.ca},
            headers, content_type=args.content_type, timeout=args.timeout,
            retry={"attempts": args.attempts, "deadline": args.deadline},
            concurrency=args.concurrency, max_data_size=args.max_data_size,
            collection_type="manual",
        )  # fmt: skip
        done = asyncio.run(g.run(dry_run=args.dry_run, report_dir=Path(args.report_dir)))
    except (RegistryError, ValueError, ImportError) as exc:
        print(f"pipeline ship: {exc}", file=sys.stderr)
        return 2
    except Busy as exc:
        print(f"pipeline ship: {exc}", file=sys.stderr)
        return 0
    except PackageError as exc:
        print(f"pipeline ship: nothing shipped: {exc}", file=sys.stderr)
        return 1
    for r in done.replies:
        print(r.describe())
    for c in done.failed:
        print(f"pipeline ship: collector {c.key} failed: {c.error}", file=sys.stderr)
    print(done.summary(args.url))
    if done.failed or done.refused:
        return 1
    return WAITING if done.waiting else 0
