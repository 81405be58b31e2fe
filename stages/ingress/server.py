"""The ingress service: receives result tarballs over HTTP, checks them and keeps each once.

A tarball is what Red Hat's analytics collector packs: data members ``./<key>.<ext>``, and
``./config.json``, ``./data_collection_status.csv`` and ``./manifest.json`` (each other
member's file name -> its version), all directly under ``./``. It comes as the form field
``file`` of a ``multipart/form-data`` POST, with an ``Idempotency-Key`` header holding its
SHA-256; a key already stored is answered ``200 duplicate`` and not stored again.

The store is a folder: ``<id>.tar.gz`` and ``<id>.json`` (what the listing shows) per
upload, ``<id>`` being the SHA-256. Both are written atomically, the entry after the
payload, so an entry always has its payload; the entries are read back at start, so the
keys stored survive a restart. What a payload must be is checked by
``stages.ingress.payload``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime as dt
import hashlib
import hmac
import json
import os
import re
import signal
import ssl
import sys
import tempfile
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any

from aiohttp import BasicAuth, MultipartReader, hdrs, web

from stages.ingress.payload import Refused, bad, inspect_tarball
from stages.ingress.protocol import API, CONTENT_TYPE, UPLOAD_PATH
from stages.outfiles import fsync_dir, write_atomically

#: the largest upload by default: the Red Hat ingress's limit
MAX_SIZE = 100 * 1024**2
REALM = "pipeline ingress"
_ID = re.compile(r"[0-9a-f]{64}")
_CHUNK = 256 * 1024


# ---------------------------------------------------------------------------- the store


class StoreError(Exception):
    """The store folder cannot be used; the message says which file and what to do."""


class Store:
    """The uploads kept in ``folder``, read back at start; ``entries`` oldest first."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.entries: dict[str, dict[str, Any]] = {}
        self.warnings: list[str] = []
        try:
            folder.mkdir(parents=True, exist_ok=True)
            self._load()
        except OSError as exc:
            msg = f"cannot use the store {folder}: {exc.strerror or exc} (give --store DIR)"
            raise StoreError(msg) from exc

    def _load(self) -> None:
        for left in self.folder.glob(".*.tmp"):  # a write a crash broke off
            left.unlink()
        found = []
        for path in self.folder.glob("*.json"):
            try:
                entry = json.loads(path.read_bytes())
                ok = entry["id"] == path.stem and _ID.fullmatch(path.stem) is not None
            except (ValueError, KeyError, TypeError):
                ok = False
            if not ok or not self.payload(path.stem).is_file():
                self.warnings.append(f"{path} is not an entry with its payload; ignored")
                continue
            found.append(entry)
        for entry in sorted(found, key=lambda e: (e["received"], e["id"])):
            self.entries[entry["id"]] = entry

    def payload(self, key: str) -> Path:
        return self.folder / f"{key}.tar.gz"

    def incoming(self) -> tuple[IO[bytes], Path]:
        """A new temporary file in the store (so that keeping it is a rename)."""
        fd, name = tempfile.mkstemp(dir=self.folder, prefix=".incoming-", suffix=".tmp")
        return os.fdopen(fd, "wb"), Path(name)

    def write(self, incoming: Path, entry: dict[str, Any]) -> None:
        """Keep ``incoming`` as the payload of ``entry``, then the entry: blocking I/O, for a
        worker thread; the caller adds ``entry`` to ``entries`` once it returns."""
        with incoming.open("rb") as f:
            os.fsync(f.fileno())
        os.replace(incoming, self.payload(entry["id"]))
        write_atomically(self.folder / f"{entry['id']}.json", json.dumps(entry).encode())
        fsync_dir(self.folder)


# ---------------------------------------------------------------------------- options


@dataclass(frozen=True)
class Auth:
    """What a request to ``/api/...`` must show; every one configured must pass, except that
    a bearer ``token`` and ``basic`` credentials are alternatives (one Authorization header).
    ``client_cert``: a client certificate the TLS layer verified."""

    token: str | None = None
    basic: tuple[str, str] | None = None
    identity: bool = False
    client_cert: bool = False

    def check(self, request: web.Request) -> None:
        """``Refused`` (401, with ``WWW-Authenticate``) unless ``request`` passes."""
        if self.client_cert:
            ssl_object = request.transport and request.transport.get_extra_info("ssl_object")
            if not (ssl_object and ssl_object.getpeercert()):
                raise self._refuse("a client certificate is required (mutual TLS)",
                                   'Mutual-TLS realm="' + REALM + '"')  # fmt: skip
        if self.identity:
            _identity(request.headers.get("x-rh-identity"), self._refuse)
        if self.token is not None or self.basic is not None:
            self._authorization(request.headers.get(hdrs.AUTHORIZATION, ""))

    def _authorization(self, header: str) -> None:
        scheme = header.partition(" ")[0].lower()
        if scheme == "bearer" and self.token is not None:
            given = header.partition(" ")[2].strip().encode()
            if not hmac.compare_digest(given, self.token.encode()):
                raise self._refuse("the bearer token is wrong")
            return
        if scheme == "basic" and self.basic is not None:
            try:
                given_auth = BasicAuth.decode(header, encoding="utf-8")
            except ValueError as exc:
                raise self._refuse(f"the Basic credentials cannot be read: {exc}") from None
            user_ok = hmac.compare_digest(given_auth.login.encode(), self.basic[0].encode())
            password_ok = hmac.compare_digest(given_auth.password.encode(),
                                              self.basic[1].encode())  # fmt: skip
            if not (user_ok and password_ok):
                raise self._refuse("the Basic user name or password is wrong")
            return
        wanted = " or ".join(w for w, on in (("Authorization: Bearer TOKEN", self.token),
                                             ("Basic credentials", self.basic)) if on)  # fmt: skip
        raise self._refuse(f"{wanted} required" + (f" (got a {scheme!r} one)" if scheme else ""))

    def _refuse(self, reason: str, challenge: str | None = None) -> Refused:
        challenges = [challenge] if challenge else []
        if self.token is not None:
            challenges.append(f'Bearer realm="{REALM}"')
        if self.basic is not None:
            challenges.append(f'Basic realm="{REALM}", charset="UTF-8"')
        if self.identity and not challenge:
            challenges.append(f'X-Rh-Identity realm="{REALM}"')
        return Refused(401, reason, {hdrs.WWW_AUTHENTICATE: ", ".join(challenges)})


def _identity(header: str | None, refuse: Callable[[str, str], Refused]) -> None:
    challenge = f'X-Rh-Identity realm="{REALM}"'
    if not header:
        raise refuse("an x-rh-identity header is required (base64 of a JSON object with an "
                     "'identity' object)", challenge)  # fmt: skip
    try:
        who = json.loads(base64.b64decode(header, validate=True))
    except (binascii.Error, ValueError):
        raise refuse("the x-rh-identity header is not base64 of JSON", challenge) from None
    if not isinstance(who, dict) or not isinstance(who.get("identity"), dict):
        raise refuse("the x-rh-identity JSON has no 'identity' object", challenge)


@dataclass(frozen=True)
class Faults:
    """Failures on purpose, for trying a shipper: answer the first ``fail_first`` uploads
    ``fail_status`` unread, and hold every upload's answer ``delay`` seconds."""

    fail_first: int = 0
    fail_status: int = 500
    delay: float = 0.0


@dataclass(frozen=True)
class Options:
    max_size: int = MAX_SIZE
    #: default: 4 x max_size
    max_unpacked: int | None = None
    content_types: frozenset[str] = frozenset({CONTENT_TYPE})
    auth: Auth = field(default_factory=Auth)
    faults: Faults = field(default_factory=Faults)


# ---------------------------------------------------------------------------- the service


def _json(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.json_response(body, status=status, headers=headers)


def log(line: str) -> None:
    print(f"pipeline ingress-server: {line}", file=sys.stderr, flush=True)


@dataclass
class _Spooled:
    path: Path
    sha256: str
    size: int
    name: str


class Ingress:
    """The HTTP service over ``store``; ``app()`` is its aiohttp application."""

    def __init__(self, store: Store, options: Options | None = None):
        self.store = store
        self.options = options or Options()
        self.max_unpacked = self.options.max_unpacked or 4 * self.options.max_size
        self.refused = self.duplicates = self.stored_now = self.failed = 0
        self._commit = asyncio.Lock()  # one upload of a key is kept, however many race

    def app(self) -> web.Application:
        @web.middleware
        async def guard(
            request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
        ) -> web.StreamResponse:
            try:
                if request.path.startswith(API + "/"):
                    self.options.auth.check(request)
                return await handler(request)
            except Refused as refusal:
                return self._refuse(request, refusal)
            except web.HTTPException as exc:  # no route, wrong method: JSON as the rest
                if exc.status < 400:
                    raise
                kept = {k: v for k, v in exc.headers.items()
                        if k not in (hdrs.CONTENT_TYPE, hdrs.CONTENT_LENGTH)}  # fmt: skip
                reason = f"{exc.reason}: {request.method} {request.path}"
                return _json({"status": "error", "reason": reason}, exc.status, kept)

        app = web.Application(client_max_size=self.options.max_size, middlewares=[guard])
        app.router.add_post(UPLOAD_PATH, self.upload)
        app.router.add_get(f"{API}/uploads", self.listing)
        app.router.add_get(f"{API}/uploads/{{id}}", self.entry)
        app.router.add_get(f"{API}/uploads/{{id}}/payload", self.payload)
        app.router.add_get("/health", self.health)
        return app

    def _refuse(self, request: web.Request, refusal: Refused) -> web.Response:
        self.refused += 1
        log(f"refused {request.remote}: {request.method} {request.path}: {refusal.status} "
            f"{refusal.reason}")  # fmt: skip
        body = {"status": "refused", "reason": refusal.reason}
        return _json(body, refusal.status, refusal.headers)

    async def upload(self, request: web.Request) -> web.Response:
        try:
            reply = await self._receive(request)
        except Refused as refusal:
            reply = self._refuse(request, refusal)
        if self.options.faults.delay:
            await asyncio.sleep(self.options.faults.delay)
        return reply

    async def _receive(self, request: web.Request) -> web.Response:
        faults, limit = self.options.faults, self.options.max_size
        if self.failed < faults.fail_first:
            self.failed += 1
            reason = (f"failed on purpose (--fail-first {faults.fail_first}: upload "
                      f"{self.failed} of {faults.fail_first})")  # fmt: skip
            log(f"{request.remote}: {faults.fail_status} {reason}")
            return _json({"status": "failed", "reason": reason}, faults.fail_status)
        if request.content_length is not None and request.content_length > limit:
            raise _too_large(limit)
        key = request.headers.get("Idempotency-Key", "").strip().lower() or None
        upload = await self._spool(request)
        try:
            if key is not None and key != upload.sha256:
                raise bad(f"the Idempotency-Key {key[:80]!r} is not the SHA-256 of the file "
                           f"received ({upload.sha256}); send the tarball's hex SHA-256, or "
                           "no key")  # fmt: skip
            known = self.store.entries.get(upload.sha256)
            new = known is None
            if known is None:
                known, new = await self._keep(upload)
        finally:
            upload.path.unlink(missing_ok=True)
        if not new:
            self.duplicates += 1
            log(f"duplicate from {request.remote}: {upload.name} is {known['name']} "
                f"({upload.sha256}), stored before")  # fmt: skip
            return _json({"status": "duplicate", "id": known["id"], "name": known["name"]})
        self.stored_now += 1
        log(f"stored {upload.name} from {request.remote}: {upload.size:,} bytes, "
            f"{len(known['members'])} members ({upload.sha256})")  # fmt: skip
        body = {"status": "stored", "id": upload.sha256, "name": upload.name, "size": upload.size}
        return _json(body, 201)

    async def _keep(self, upload: _Spooled) -> tuple[dict[str, Any], bool]:
        """The entry of ``upload`` once checked and stored, and whether it is new (the same
        payload uploaded at the same time may have been kept first)."""
        contents = await asyncio.to_thread(inspect_tarball, upload.path, self.max_unpacked)
        async with self._commit:
            known = self.store.entries.get(upload.sha256)
            if known is not None:
                return known, False
            entry = {
                "id": upload.sha256, "name": upload.name, "size": upload.size,
                "received": dt.datetime.now(dt.UTC).isoformat(),
                "members": contents.members, "manifest": contents.manifest,
            }  # fmt: skip
            await asyncio.to_thread(self.store.write, upload.path, entry)
            self.store.entries[upload.sha256] = entry
            return entry, True

    async def _spool(self, request: web.Request) -> _Spooled:
        """The form field ``file`` into a temporary file of the store, hashed on the way."""
        if request.content_type != "multipart/form-data":
            raise bad(f"the body is {request.content_type or 'untyped'}, not "
                       "multipart/form-data with the tarball as the field 'file'")  # fmt: skip
        out, path = self.store.incoming()
        digest, size, total = hashlib.sha256(), 0, 0
        name: str | None = None
        try:
            with out:
                try:
                    reader = await request.multipart()
                    while (part := await reader.next()) is not None:
                        if isinstance(part, MultipartReader):  # a nested multipart: not ours
                            await part.release()
                            continue
                        is_file = part.name == "file"
                        if is_file:
                            if name is not None:
                                raise bad("more than one 'file' field; send one tarball each")
                            self._check_type(part.headers.get(hdrs.CONTENT_TYPE, ""))
                            name = PurePosixPath((part.filename or "").replace("\\", "/")).name
                        while chunk := await part.read_chunk(_CHUNK):
                            total += len(chunk)
                            if total > self.options.max_size:
                                raise _too_large(self.options.max_size)
                            if is_file:
                                digest.update(chunk)
                                out.write(chunk)
                                size += len(chunk)
                except (ValueError, RuntimeError) as exc:  # aiohttp's word on a bad body
                    raise bad(f"the multipart body cannot be read: {exc}") from None
            if name is None:
                raise bad("no 'file' field: send the tarball as the multipart field 'file'")
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        sha = digest.hexdigest()
        return _Spooled(path, sha, size, name or f"{sha}.tar.gz")

    def _check_type(self, header: str) -> None:
        mime = header.partition(";")[0].strip().lower()
        if mime not in self.options.content_types:
            accepted = ", ".join(sorted(self.options.content_types))
            raise Refused(415, f"the file part's content type is {mime or 'missing'!r}; this "
                          f"server takes {accepted} (--content-type)")  # fmt: skip

    async def listing(self, request: web.Request) -> web.Response:
        return _json(list(self.store.entries.values()))

    def _known(self, request: web.Request) -> dict[str, Any]:
        key = request.match_info["id"]
        entry = self.store.entries.get(key)
        if entry is None:
            raise web.HTTPNotFound(reason=f"no upload {key[:80]!r} is stored")
        return entry

    async def entry(self, request: web.Request) -> web.Response:
        return _json(self._known(request))

    async def payload(self, request: web.Request) -> web.FileResponse:
        entry = self._known(request)
        disposition = f'attachment; filename="{entry["name"].replace(chr(34), "")}"'
        headers = {hdrs.CONTENT_TYPE: "application/gzip", hdrs.CONTENT_DISPOSITION: disposition}
        return web.FileResponse(self.store.payload(entry["id"]), headers=headers)

    async def health(self, request: web.Request) -> web.Response:
        return _json({"status": "ok", "stored": len(self.store.entries),
                      "refused": self.refused, "duplicates": self.duplicates})  # fmt: skip


def _too_large(limit: int) -> Refused:
    return Refused(413, f"the upload is larger than the {limit:,} bytes this server takes "
                   "(--max-size); split it into smaller tarballs")  # fmt: skip


# ---------------------------------------------------------------------------- serving


def tls_context(cert: str, key: str, client_ca: str | None = None) -> ssl.SSLContext:
    """A server context; with ``client_ca``, client certificates are asked for and any given
    must be signed by it (``Auth.client_cert`` then refuses requests without one, with a
    401 the client can read rather than a broken handshake). ``OSError``/``ssl.SSLError``."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    if client_ca:
        ctx.load_verify_locations(cafile=client_ca)
        ctx.verify_mode = ssl.CERT_OPTIONAL
    return ctx


def url(host: str, port: int, tls: bool) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"{'https' if tls else 'http'}://{shown}:{port}{UPLOAD_PATH}"


async def serve_async(
    ingress: Ingress,
    bind: tuple[str, int],
    *,
    tls: ssl.SSLContext | None = None,
    ready: Callable[[str], None] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Serve ``ingress`` on ``bind`` until ``stop`` is set; ``ready`` gets the upload URL
    once it listens. ``OSError`` if ``bind`` cannot be listened on."""
    runner = web.AppRunner(ingress.app(), access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, bind[0], bind[1], ssl_context=tls)
        await site.start()
        host, port = runner.addresses[0][:2]
        if ready is not None:
            ready(url(host, port, tls is not None))
        await (stop or asyncio.Event()).wait()
    finally:
        await runner.cleanup()


def serve(ingress: Ingress, bind: tuple[str, int], **options: Any) -> None:
    """``serve_async`` on an event loop of its own; SIGINT and SIGTERM end it."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await serve_async(ingress, bind, stop=stop, **options)

    asyncio.run(main())
