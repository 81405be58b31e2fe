"""A shipper and a gatherer from plain settings: the stage's parameters and the
``pipeline ship`` command's options say the same things the same way.

Secrets are never written in a topology: ``password_env`` and ``token_env`` name the
environment variables that hold them (default ``INGRESS_PASSWORD``, ``INGRESS_TOKEN``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from stages.ingress.gather import MAX_DATA_SIZE, Gatherer
from stages.ingress.protocol import CONTENT_TYPE, DEFAULT_URL
from stages.ingress.registry import load
from stages.ingress.shipper import Auth, Retry, Shipper

#: the collectors a gathering uses unless told otherwise
DEFAULT_COLLECTORS = ("stages.ingress.collectors",)

_AUTH_KEYS = {"mode", "user", "password_env", "token_env", "cert", "key", "ca", "identity"}
_RETRY_KEYS = {"attempts", "base", "cap", "deadline"}


def auth_of(settings: Mapping[str, Any] | None) -> Auth:
    s = dict(settings or {})
    unknown = set(s) - _AUTH_KEYS
    if unknown:
        msg = f"unknown auth setting(s) {sorted(unknown)}: use {', '.join(sorted(_AUTH_KEYS))}"
        raise ValueError(msg)
    return Auth(
        mode=str(s.get("mode") or "none"),
        user=str(s.get("user") or ""),
        password=os.environ.get(str(s.get("password_env") or "INGRESS_PASSWORD"), ""),
        token=os.environ.get(str(s.get("token_env") or "INGRESS_TOKEN"), ""),
        cert=str(s.get("cert") or ""),
        key=str(s.get("key") or ""),
        ca=str(s.get("ca") or ""),
        identity=dict(s.get("identity") or {}),
    )


def retry_of(settings: Mapping[str, Any] | None) -> Retry:
    s = dict(settings or {})
    unknown = set(s) - _RETRY_KEYS
    if unknown:
        msg = f"unknown retry setting(s) {sorted(unknown)}: use {', '.join(sorted(_RETRY_KEYS))}"
        raise ValueError(msg)
    deadline = s.get("deadline")
    return Retry(attempts=int(s.get("attempts", 6)), base=float(s.get("base", 0.5)),
                 cap=float(s.get("cap", 30.0)),
                 deadline=None if deadline in (None, "") else float(deadline))  # fmt: skip


def gatherer(
    outbox: str,
    url: str = DEFAULT_URL,
    collectors: Sequence[str] = DEFAULT_COLLECTORS,
    auth: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
    content_type: str = CONTENT_TYPE,
    timeout: float = 31.0,
    retry: Mapping[str, Any] | None = None,
    concurrency: int = 4,
    max_data_size: int = MAX_DATA_SIZE,
    name_base: str = "pipeline-results",
    collection_type: str = "scheduled",
) -> Gatherer:
    shipper = Shipper(url, content_type, auth_of(auth), headers, timeout, retry_of(retry),
                      concurrency)  # fmt: skip
    return Gatherer(load(list(collectors)), outbox, shipper, max_data_size, name_base,
                    collection_type)  # fmt: skip
