"""Uploading tarballs to an ingress service: multipart POSTs, retried with backoff.

Each tarball goes as one ``multipart/form-data`` field ``file`` (its name, the configured
payload content type), as Red Hat's analytics collector sends it, with an
``Idempotency-Key`` header: the tarball's SHA-256, so an upload retried after a reply was
lost is stored once. Unlike that collector it retries: connection errors, timeouts, 5xx,
408 and 429 are tried again after an exponentially growing, jittered delay (or the
server's ``Retry-After``), until ``attempts`` or the ``deadline`` runs out; any other 4xx
is final (the server refused the payload, and sending it again will not change that).

>>> Retry(attempts=4, base=1.0, cap=3.0).delays(jitter=lambda: 1.0)
[1.0, 2.0, 3.0]
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stages.ingress.protocol import CONTENT_TYPE

if TYPE_CHECKING:
    import aiohttp

#: statuses worth trying again: the server may answer otherwise later
RETRY_STATUSES = frozenset({408, 429})


@dataclass(frozen=True)
class Auth:
    """How the shipper proves who it is: ``mode`` is ``none``, ``basic`` (``user``,
    ``password``), ``token`` (a bearer ``token``), ``cert`` (a client certificate
    ``cert`` and ``key``: mutual TLS) or ``identity`` (an ``x-rh-identity`` header made from
    ``identity``, as Red Hat's ingress takes in development). ``ca``: the CA file the
    server's certificate is checked against (default: the system's)."""

    mode: str = "none"
    user: str = ""
    password: str = ""
    token: str = ""
    cert: str = ""
    key: str = ""
    ca: str = ""
    identity: Mapping[str, Any] = field(default_factory=dict)

    MODES = ("none", "basic", "token", "cert", "identity")

    def __post_init__(self) -> None:
        if self.mode not in self.MODES:
            msg = f"auth mode {self.mode!r} is not one of {', '.join(self.MODES)}"
            raise ValueError(msg)
        need = {"basic": ("user",), "token": ("token",), "cert": ("cert", "key")}
        missing = [n for n in need.get(self.mode, ()) if not getattr(self, n)]
        if missing:
            msg = f"auth mode {self.mode!r} needs {' and '.join(missing)}"
            raise ValueError(msg)

    def headers(self) -> dict[str, str]:
        if self.mode == "token":
            return {"Authorization": f"Bearer {self.token}"}
        if self.mode == "basic":
            raw = f"{self.user}:{self.password}".encode()
            return {"Authorization": "Basic " + base64.b64encode(raw).decode()}
        if self.mode == "identity":
            who = self.identity or {"identity": {"type": "User", "account_number": "0000001",
                                                 "internal": {"org_id": "000001"}}}  # fmt: skip
            return {"x-rh-identity": base64.b64encode(json.dumps(who).encode()).decode()}
        return {}

    def ssl_context(self) -> ssl.SSLContext | None:
        if not (self.ca or self.mode == "cert"):
            return None
        context = ssl.create_default_context(cafile=self.ca or None)
        if self.mode == "cert":
            context.load_cert_chain(self.cert, self.key)
        return context


@dataclass(frozen=True)
class Retry:
    """``attempts`` in all (1: never retried); the n-th retry waits ``base * 2**n`` seconds
    (at most ``cap``) times a random factor in [0.5, 1] (jitter, so that many shippers
    retrying at once spread out); ``deadline``: seconds after which no retry starts."""

    attempts: int = 6
    base: float = 0.5
    cap: float = 30.0
    deadline: float | None = None

    def delays(self, jitter: Callable[[], float] | None = None) -> list[float]:
        """The waits before each retry."""
        draw = jitter or (lambda: random.uniform(0.5, 1.0))
        return [min(self.cap, self.base * 2**n) * draw() for n in range(self.attempts - 1)]


@dataclass
class Reply:
    """How an upload ended: ``sent`` (stored), ``duplicate`` (stored before), ``refused``
    (a final 4xx) or ``failed`` (still failing when the retries ran out)."""

    path: Path
    outcome: str
    status: int | None = None
    body: str = ""
    attempts: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)

    @property
    def delivered(self) -> bool:
        return self.outcome in ("sent", "duplicate")

    def describe(self) -> str:
        what = {"sent": "stored", "duplicate": "stored before (not stored twice)",
                "refused": "refused", "failed": "not delivered"}[self.outcome]  # fmt: skip
        status = f" (HTTP {self.status})" if self.status else ""
        last = f": {self.errors[-1]}" if self.errors and not self.delivered else ""
        return (f"{self.path.name}: {what}{status} after {self.attempts} attempt(s), "
                f"{self.seconds:.1f} s{last}")  # fmt: skip


class Shipper:
    """POSTs tarballs to ``url`` (see the module docstring); use ``async with``."""

    def __init__(
        self,
        url: str,
        content_type: str = CONTENT_TYPE,
        auth: Auth | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = 31.0,
        retry: Retry | None = None,
        concurrency: int = 4,
    ) -> None:
        self.url = url
        self.content_type = content_type
        self.auth = auth or Auth()
        self.headers = {**(headers or {}), **self.auth.headers()}
        self.timeout = timeout
        self.retry = retry or Retry()
        self.concurrency = max(1, concurrency)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Shipper:
        import aiohttp  # noqa: PLC0415 - only where something is shipped

        connector = aiohttp.TCPConnector(ssl=self.auth.ssl_context() or True)
        self._session = aiohttp.ClientSession(connector=connector)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def ship(self, path: Path, sha256: str) -> Reply:
        """Upload one tarball, retrying as the module docstring says."""
        import aiohttp  # noqa: PLC0415

        assert self._session is not None, "use the shipper with 'async with'"
        started = time.monotonic()
        reply = Reply(path, "failed")
        delays = self.retry.delays()
        for attempt in range(self.retry.attempts):
            reply.attempts = attempt + 1
            wait: float | None = None
            budget = self.timeout
            if self.retry.deadline is not None:  # no attempt runs past the deadline
                budget = max(0.1, min(budget, self.retry.deadline - (time.monotonic() - started)))
            try:
                status, body, after = await self._post(path, sha256, budget)
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                reply.errors.append(_reason(exc, budget))
            else:
                reply.status, reply.body = status, body
                if status in (200, 201, 202):
                    reply.outcome = "duplicate" if _duplicate(status, body) else "sent"
                    break
                reply.errors.append(f"HTTP {status}: {body[:300]}")
                if status < 500 and status not in RETRY_STATUSES:
                    reply.outcome = "refused"
                    break
                wait = after
            if attempt == len(delays):
                break
            pause = delays[attempt] if wait is None else min(wait, self.retry.cap)
            spent = time.monotonic() - started
            if self.retry.deadline is not None and spent + pause > self.retry.deadline:
                reply.errors.append(f"no retry after {spent:.1f} s: the deadline "
                                    f"({self.retry.deadline:g} s) would pass")  # fmt: skip
                break
            await asyncio.sleep(pause)
        reply.seconds = time.monotonic() - started
        return reply

    async def _post(self, path: Path, sha256: str, timeout: float) -> tuple[int, str, float | None]:
        import aiohttp  # noqa: PLC0415

        assert self._session is not None
        form = aiohttp.FormData(quote_fields=False)  # the name as it is, as curl sends it
        data = await asyncio.to_thread(path.read_bytes)
        form.add_field("file", data, filename=path.name, content_type=self.content_type)
        headers = {**self.headers, "Idempotency-Key": sha256}
        async with self._session.post(self.url, data=form, headers=headers,
                                      timeout=aiohttp.ClientTimeout(total=timeout),
                                      allow_redirects=False) as response:  # fmt: skip
            body = await response.text(errors="replace")
            return response.status, body, _retry_after(response.headers.get("Retry-After"))


def _duplicate(status: int, body: str) -> bool:
    try:
        return bool(json.loads(body).get("status") == "duplicate")
    except (ValueError, AttributeError):
        return status == 200


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None  # an HTTP date: the backoff's own delay is used


def _reason(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, TimeoutError):
        return f"no reply within {timeout:g} s"
    return f"{type(exc).__name__}: {exc}"
