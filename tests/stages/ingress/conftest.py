"""The ingress server as tests meet it: the real ``pipeline ingress-server`` on a free port
with a store of the test's own (``start_ingress(*args)`` for one with options, e.g. faults),
stopped after the test; and tarballs and uploads made as a shipper makes them."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import selectors
import ssl
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO

UPLOAD_PATH = "/api/ingress/v1/upload"
CONTENT_TYPE = "application/vnd.pipeline.payload+tgz"
STATUS_HEADER = "collection_start_timestamp,since,until,file_name,status,elapsed"
_PRINTED = "pipeline ingress-server: listening on "


@dataclass
class Server:
    """A running ingress server: ``url`` is the upload URL it printed."""

    url: str
    store: Path
    proc: subprocess.Popen[bytes]
    log_path: Path

    @property
    def base(self) -> str:
        """``http(s)://HOST:PORT``, for the other paths."""
        return self.url.removesuffix(UPLOAD_PATH)

    def log(self) -> str:
        """What it wrote on stderr so far."""
        return self.log_path.read_text()

    def stop(self, sig: int = 15) -> int:
        """Stop it (SIGTERM unless ``sig`` says otherwise); its exit status. Idempotent."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return self.proc.returncode


StartIngress = Callable[..., Server]


def _first_line(proc: subprocess.Popen[bytes], timeout: float) -> str | None:
    """The first line ``proc`` prints, or None if it ends or keeps silent ``timeout`` s."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    got = b""
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        while b"\n" not in got:
            left = deadline - time.monotonic()
            if left <= 0 or not sel.select(left):
                return None
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                return None
            got += chunk
    return got.decode().partition("\n")[0]


@pytest.fixture
def start_ingress(tmp_path: Path) -> Iterator[StartIngress]:
    """``start(*args, store=None, env=None) -> Server``: ``pipeline ingress-server --bind
    127.0.0.1:0 --store STORE *args`` (STORE: the test's ``store`` folder unless given, so
    a second start reads what the first stored). Every server started is stopped after
    the test, which fails unless each exited 0."""
    started: list[Server] = []

    def start(*args: str, store: Path | None = None, env: Mapping[str, str] | None = None,
              timeout: float = 20.0) -> Server:  # fmt: skip
        store = store or tmp_path / "store"
        log_path = tmp_path / f"ingress-{len(started)}.log"
        base_env = {k: v for k, v in os.environ.items() if not k.startswith("INGRESS_")}
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "pipeline", "ingress-server", "--bind", "127.0.0.1:0",
                 "--store", str(store), *args],
                cwd=REPO, env={**base_env, "PYTHONPATH": str(REPO), **(env or {})},
                stdout=subprocess.PIPE, stderr=log, start_new_session=True,
            )  # fmt: skip
        line = _first_line(proc, timeout)
        if line is None or not line.startswith(_PRINTED):
            proc.kill()
            proc.wait()
            assert proc.stdout is not None
            proc.stdout.close()
            pytest.fail(f"pipeline ingress-server {' '.join(args)} did not start: printed "
                        f"{line!r}; stderr: {log_path.read_text()}")  # fmt: skip
        server = Server(line.removeprefix(_PRINTED).split(" ")[0], store, proc, log_path)
        started.append(server)
        return server

    yield start
    codes = {s.url: s.stop() for s in started}
    assert all(code == 0 for code in codes.values()), f"ingress servers' exit codes: {codes}"


@pytest.fixture
def ingress_server(start_ingress: StartIngress) -> Server:
    """An ingress server with the default options."""
    return start_ingress()


# ---------------------------------------------------------------------------- tarballs

Member = tuple[tarfile.TarInfo, bytes]


def member(
    name: str, data: bytes = b"", *, kind: bytes = tarfile.REGTYPE, link: str = ""
) -> Member:
    """One tar member, made by hand (any name, any type: hostile ones too)."""
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mtime, info.mode = kind, link, 1_700_000_000, 0o644
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    return info, data


def pack(members: Sequence[Member], *, compress: bool = True) -> bytes:
    """The members as a .tar.gz (or a bare tar), in order."""
    plain = io.BytesIO()
    with tarfile.open(fileobj=plain, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return gzip.compress(plain.getvalue(), mtime=0) if compress else plain.getvalue()


def payload_members(data: Mapping[str, bytes] | None = None, manifest: Any = None) -> list[Member]:
    """A valid payload's members: ``data`` (name -> bytes; default one JSON report), then
    config.json, data_collection_status.csv and manifest.json (default: listing the others)."""
    data = {"usage.json": b'{"groups": 3}'} if data is None else data
    config = b'{"install_uuid": "test", "platform": "linux"}'
    status = (STATUS_HEADER + "\n" + "".join(
        f"2026-11-29T06:00:00+00:00,2026-11-28T06:00:00+00:00,2026-11-29T06:00:00+00:00,{n},ok,0\n"
        for n in data
    )).encode()  # fmt: skip
    names = [*data, "config.json", "data_collection_status.csv"]
    manifest = {n: "1.0" for n in names} if manifest is None else manifest
    return [
        *(member(f"./{n}", d) for n, d in data.items()),
        member("./config.json", config),
        member("./data_collection_status.csv", status),
        member("./manifest.json", json.dumps(manifest).encode()),
    ]


def tarball(data: Mapping[str, bytes] | None = None, manifest: Any = None) -> bytes:
    """A valid payload (see ``payload_members``)."""
    return pack(payload_members(data, manifest))


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------------------- HTTP


@dataclass
class Reply:
    status: int
    headers: Message
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def request(
    url: str,
    data: bytes | Iterator[bytes] | None = None,
    headers: Mapping[str, str] | None = None,
    *,
    context: ssl.SSLContext | None = None,
    timeout: float = 10.0,
) -> Reply:
    """One HTTP request, straight (no proxy); the reply whatever its status."""
    handlers: list[urllib.request.BaseHandler] = [urllib.request.ProxyHandler({})]
    if context is not None:
        handlers.append(urllib.request.HTTPSHandler(context=context))
    opener = urllib.request.build_opener(*handlers)
    req = urllib.request.Request(url, data=data, headers=dict(headers or {}))
    try:
        with opener.open(req, timeout=timeout) as resp:
            return Reply(resp.status, resp.headers, resp.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return Reply(exc.code, exc.headers, exc.read())


def form(data: bytes, *, name: str = "analytics.tar.gz", content_type: str = CONTENT_TYPE,
         field: str = "file") -> tuple[bytes, str]:  # fmt: skip
    """A multipart/form-data body holding ``data`` as ``field``, and its Content-Type."""
    boundary = uuid.uuid4().hex
    head = (f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; '
            f'filename="{name}"\r\nContent-Type: {content_type}\r\n\r\n')  # fmt: skip
    return head.encode() + data + f"\r\n--{boundary}--\r\n".encode(), (
        f"multipart/form-data; boundary={boundary}"
    )


def upload(
    server: Server,
    data: bytes,
    *,
    key: str | None = "sha256",
    headers: Mapping[str, str] | None = None,
    name: str = "analytics.tar.gz",
    content_type: str = CONTENT_TYPE,
    context: ssl.SSLContext | None = None,
    timeout: float = 10.0,
) -> Reply:
    """POST ``data`` as a shipper does; ``key``: the Idempotency-Key ("sha256": the
    tarball's, None: no header)."""
    body, form_type = form(data, name=name, content_type=content_type)
    sent = {"Content-Type": form_type, **(headers or {})}
    if key is not None:
        sent["Idempotency-Key"] = sha256(data) if key == "sha256" else key
    return request(server.url, body, sent, context=context, timeout=timeout)
