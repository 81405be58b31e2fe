"""``pipeline ingress-server``: its arguments and its handler, which alone imports the server
(``stages.ingress.server``, with aiohttp) so that every other command starts without it."""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path
from typing import Any

from pipeline.errors import ExitCode, UsageError
from stages.ingress.protocol import CONTENT_TYPE, DEFAULT_BIND, UPLOAD_PATH

TOKEN_ENV, BASIC_ENV = "INGRESS_TOKEN", "INGRESS_BASIC"

EPILOG = f"""\
Receives result tarballs (./<key>.json|csv, ./config.json, ./data_collection_status.csv
and ./manifest.json, the file name -> version of every other member) as the multipart
field 'file' of a POST to {UPLOAD_PATH}, checks them (gzip, names directly
under ./, regular files only, the members the manifest lists and no others, the status
header, the sizes) and keeps each once under --store as <sha256>.tar.gz and <sha256>.json.
An Idempotency-Key header (the tarball's hex SHA-256) that is stored already is answered
200 duplicate and not stored again, also after a restart. Answers are JSON: 201 stored,
200 duplicate, 400 refused (with the reason), 401, 413 too large, 415 wrong part type.
Each refusal is logged on stderr. Stop it with Ctrl-C or SIGTERM.

Also: GET /api/ingress/v1/uploads (what is stored, oldest first),
GET /api/ingress/v1/uploads/ID (one entry), GET /api/ingress/v1/uploads/ID/payload (the
tarball), GET /health (no authentication).

Authentication, for every /api/ path: each option given must be satisfied, except that
--token and --basic are alternatives (both use the Authorization header). With
--client-ca, a client certificate not signed by that CA fails the TLS handshake, and a
request without one is answered 401.

Faults, for trying a shipper against it: --fail-first N answers the first N uploads
--fail-status without reading them; --delay S holds each upload's answer S seconds after
the upload was handled (a client that times out has still delivered it, and its retry
is answered 200 duplicate).

examples:
  pipeline ingress-server --store ingress-store
  curl -F "file=@analytics-2026-11-29.tar.gz;type={CONTENT_TYPE}" \\
      -H "Idempotency-Key: $(sha256sum analytics-2026-11-29.tar.gz | cut -d' ' -f1)" \\
      http://127.0.0.1:8470{UPLOAD_PATH}
  curl -s http://127.0.0.1:8470/api/ingress/v1/uploads
  {TOKEN_ENV}=s3cret pipeline ingress-server --bind 0.0.0.0:8443 --store /srv/ingress \\
      --tls-cert server.pem --tls-key server.key
  pipeline ingress-server --bind 127.0.0.1:0 --store try-store --fail-first 2 --delay 5
"""

_UNITS = {"": 1, "b": 1, "k": 1024, "kib": 1024, "m": 1024**2, "mib": 1024**2,
          "g": 1024**3, "gib": 1024**3}  # fmt: skip


def size(text: str) -> int:
    """A byte count: a number, with K, M or G (KiB, MiB, GiB: powers of 1024) after it.

    >>> size("100MiB"), size("1k"), size("4096")
    (104857600, 1024, 4096)
    """
    found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", text)
    unit = found and _UNITS.get(found[2].lower())
    if not found or unit is None or float(found[1]) * unit < 1:
        msg = f"expected a size such as 4096, 64K or 100MiB, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return int(float(found[1]) * unit)


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "ingress-server",
        help="an HTTP ingress service that receives and keeps result tarballs",
        description="Serve an HTTP ingress that receives result tarballs, checks their "
        "layout and keeps each one once in a store folder.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--bind", default=DEFAULT_BIND, metavar="HOST:PORT",
                   help=f"where to listen (default: {DEFAULT_BIND}; port 0: a free port, "
                   "printed at start)")  # fmt: skip
    p.add_argument("--store", default="ingress-store", metavar="DIR",
                   help="the folder the uploads are kept in (default: ingress-store)")  # fmt: skip
    p.add_argument("--max-size", type=size, default=100 * 1024**2, metavar="SIZE",
                   help="the largest upload (default: 100MiB, the Red Hat ingress's limit); "
                   "larger ones are answered 413")  # fmt: skip
    p.add_argument("--max-unpacked", type=size, metavar="SIZE",
                   help="the most a tarball may unpack to (default: 4 x --max-size); reading "
                   "stops there and the upload is refused")  # fmt: skip
    p.add_argument("--content-type", action="append", metavar="TYPE",
                   help=f"a content type the file part may have (repeat for more; default: "
                   f"{CONTENT_TYPE}); others are answered 415")  # fmt: skip
    auth = p.add_argument_group("authentication (for every /api/ path)")
    auth.add_argument("--token", help="require Authorization: Bearer TOKEN (default: "
                      f"${TOKEN_ENV})")  # fmt: skip
    auth.add_argument("--basic", metavar="USER:PASSWORD", help="require HTTP basic "
                      f"authentication (default: ${BASIC_ENV})")  # fmt: skip
    auth.add_argument("--identity", action="store_true",
                      help="require an x-rh-identity header: base64 of JSON with an 'identity' "
                      "object (as the Red Hat ingress in development)")  # fmt: skip
    auth.add_argument("--tls-cert", metavar="FILE", help="serve HTTPS with this certificate (PEM)")
    auth.add_argument("--tls-key", metavar="FILE", help="the private key of --tls-cert (PEM)")
    auth.add_argument("--client-ca", metavar="FILE",
                      help="require client certificates signed by this CA (mutual TLS; needs "
                      "--tls-cert)")  # fmt: skip
    faults = p.add_argument_group("faults on purpose (for trying a shipper)")
    faults.add_argument("--fail-first", type=int, default=0, metavar="N",
                        help="answer the first N uploads --fail-status, unread and not "
                        "stored")  # fmt: skip
    faults.add_argument("--fail-status", type=int, default=500, metavar="CODE",
                        help="the status --fail-first answers (default: 500)")  # fmt: skip
    faults.add_argument("--delay", type=float, default=0.0, metavar="SECONDS",
                        help="hold each upload's answer this long (lets a client's timeout be "
                        "tried)")  # fmt: skip
    p.set_defaults(handler=run)


def parse_bind(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:8470`` for IPv6).

    >>> parse_bind("127.0.0.1:0"), parse_bind("[::1]:8470")
    (('127.0.0.1', 0), ('::1', 8470))
    """
    host, _, port = text.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not host or not port.isdigit() or int(port) > 65535:
        msg = f"--bind takes HOST:PORT (e.g. {DEFAULT_BIND}, or port 0: a free one), got {text!r}"
        raise UsageError(msg)
    return host, int(port)


def _checked(args: argparse.Namespace) -> tuple[str | None, tuple[str, str] | None]:
    """The token and basic credentials; ``UsageError`` for options that do not fit."""
    token = args.token if args.token is not None else os.environ.get(TOKEN_ENV)
    basic_text = args.basic if args.basic is not None else os.environ.get(BASIC_ENV)
    if token is not None and not token:
        raise UsageError(f"the token (--token or ${TOKEN_ENV}) is empty")
    basic = None
    if basic_text is not None:
        user, colon, password = basic_text.partition(":")
        if not colon or not user:
            raise UsageError(f"--basic (or ${BASIC_ENV}) takes USER:PASSWORD")
        basic = (user, password)
    if bool(args.tls_cert) != bool(args.tls_key):
        raise UsageError("--tls-cert and --tls-key go together")
    if args.client_ca and not args.tls_cert:
        raise UsageError("--client-ca needs --tls-cert and --tls-key (mutual TLS is TLS)")
    if args.fail_first < 0 or args.delay < 0:
        raise UsageError("--fail-first and --delay cannot be negative")
    if not 400 <= args.fail_status <= 599:
        raise UsageError(f"--fail-status {args.fail_status} is not a failure (400-599)")
    return token, basic


def run(args: argparse.Namespace) -> int:
    import ssl  # noqa: PLC0415

    from stages.ingress import server  # noqa: PLC0415 - aiohttp, only here

    bind = parse_bind(args.bind)
    token, basic = _checked(args)
    tls = None
    if args.tls_cert:
        try:
            tls = server.tls_context(args.tls_cert, args.tls_key, args.client_ca)
        except (OSError, ssl.SSLError) as exc:
            raise UsageError(f"cannot use the TLS files given: {exc}") from exc
    options = server.Options(
        max_size=args.max_size,
        max_unpacked=args.max_unpacked,
        content_types=frozenset(t.lower() for t in args.content_type or [CONTENT_TYPE]),
        auth=server.Auth(token, basic, args.identity, bool(args.client_ca)),
        faults=server.Faults(args.fail_first, args.fail_status, args.delay),
    )
    try:
        store = server.Store(Path(args.store))
    except server.StoreError as exc:
        print(f"pipeline ingress-server: {exc}", file=sys.stderr)
        return ExitCode.FAILED
    for warning in store.warnings:
        server.log(warning)
    ingress = server.Ingress(store, options)

    def ready(address: str) -> None:
        print(f"pipeline ingress-server: listening on {address} (store {store.folder.absolute()})",
              flush=True)  # fmt: skip

    try:
        server.serve(ingress, bind, tls=tls, ready=ready)
    except OSError as exc:
        print(f"pipeline ingress-server: cannot listen on {args.bind}: {exc.strerror or exc} "
              "(choose another with --bind HOST:PORT, or port 0 for a free one)",
              file=sys.stderr)  # fmt: skip
        return ExitCode.FAILED
    server.log(f"stopped: {len(store.entries)} stored ({ingress.stored_now} this run), "
               f"{ingress.duplicates} duplicates, {ingress.refused} refused")  # fmt: skip
    return ExitCode.OK
