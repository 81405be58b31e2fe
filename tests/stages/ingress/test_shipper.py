"""The shipper against the real ingress server: each way of proving who it is, what is
retried and what is final, and the deadline."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from pathlib import Path

import pytest

from stages.ingress.shipper import Auth, Reply, Retry, Shipper
from tests.stages.ingress.conftest import Server, StartIngress, sha256, tarball
from tests.stages.ingress.test_gather import free_port
from tests.stages.ingress.test_server import certs  # noqa: F401 - the fixture

pytestmark = pytest.mark.integration


def ship(url: str, path: Path, **options: object) -> Reply:
    async def go() -> Reply:
        async with Shipper(url, **options) as s:  # type: ignore[arg-type]
            return await s.ship(path, sha256(path.read_bytes()))

    return asyncio.run(go())


@pytest.fixture
def payload(tmp_path: Path) -> Path:
    path = tmp_path / "pipeline-results-2026-11-30-060000+0000-0.tar.gz"
    path.write_bytes(tarball())
    return path


def test_the_tarball_is_stored_under_its_own_name(ingress_server: Server, payload: Path) -> None:
    reply = ship(ingress_server.url, payload)
    assert (reply.outcome, reply.status, reply.attempts) == ("sent", 201, 1)
    assert json.loads(reply.body)["name"] == payload.name  # the "+" of the zone as it is
    again = ship(ingress_server.url, payload)
    assert (again.outcome, again.status) == ("duplicate", 200)


@pytest.mark.parametrize(
    ("server_args", "auth", "env"),
    [
        (("--token", "t0ken"), {"mode": "token", "token": "t0ken"}, {}),
        (("--basic", "ann:pw"), {"mode": "basic", "user": "ann", "password": "pw"}, {}),
        (("--identity",), {"mode": "identity"}, {}),
    ],
)
def test_each_auth_mode_gets_in_and_the_wrong_secret_does_not(
    start_ingress: StartIngress, payload: Path, server_args: tuple[str, ...],
    auth: dict[str, str], env: dict[str, str],
) -> None:  # fmt: skip
    server = start_ingress(*server_args)
    assert ship(server.url, payload, auth=Auth(**auth)).status == 201
    if auth["mode"] != "identity":
        wrong = Auth(**{**auth, "token": "nope", "password": "nope"})
        refused = ship(server.url, payload, auth=wrong)
        assert (refused.outcome, refused.status, refused.attempts) == ("refused", 401, 1)
    nobody = ship(server.url, payload)
    assert (nobody.outcome, nobody.status) == ("refused", 401)


def test_the_identity_header_is_base64_json_of_an_identity() -> None:
    header = Auth(mode="identity").headers()["x-rh-identity"]
    assert "identity" in json.loads(base64.b64decode(header))


def test_a_client_certificate_gets_in_over_mutual_tls(
    start_ingress: StartIngress,
    payload: Path,
    certs: Path,  # noqa: F811 - the fixture
) -> None:
    tls = ("--tls-cert", certs / "server.crt", "--tls-key", certs / "server.key")
    server = start_ingress(*map(str, tls), "--client-ca", str(certs / "ca.crt"))
    mine = Auth(mode="cert", cert=str(certs / "client.crt"), key=str(certs / "client.key"),
                ca=str(certs / "ca.crt"))  # fmt: skip
    assert ship(server.url, payload, auth=mine).status == 201
    anonymous = ship(server.url, payload, auth=Auth(ca=str(certs / "ca.crt")))
    assert (anonymous.outcome, anonymous.status) == ("refused", 401)


def test_retries_stop_at_the_deadline(payload: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/api/ingress/v1/upload"
    t0 = time.monotonic()
    reply = ship(url, payload, retry=Retry(attempts=50, base=0.2, cap=0.4, deadline=1.5))
    took = time.monotonic() - t0
    assert reply.outcome == "failed" and 1 < reply.attempts < 50
    assert took < 2.5 and "deadline" in reply.errors[-1]


def test_a_server_error_is_retried_and_a_client_error_is_not(
    start_ingress: StartIngress, payload: Path
) -> None:
    flaky = start_ingress("--fail-first", "1", "--fail-status", "429")
    reply = ship(flaky.url, payload, retry=Retry(attempts=3, base=0.05))
    assert (reply.outcome, reply.attempts) == ("sent", 2)  # 429: try again later
    final = start_ingress("--fail-first", "1", "--fail-status", "403")
    reply = ship(final.url, payload, retry=Retry(attempts=3, base=0.05))
    assert (reply.outcome, reply.status, reply.attempts) == ("refused", 403, 1)


def test_the_backoff_doubles_up_to_its_cap_with_jitter() -> None:
    assert Retry(attempts=5, base=1.0, cap=5.0).delays(jitter=lambda: 1.0) == [1, 2, 4, 5]
    spread = Retry(attempts=40, base=1.0, cap=1.0).delays()
    assert all(0.5 <= d <= 1.0 for d in spread) and len(set(spread)) > 1


def test_an_auth_mode_missing_what_it_needs_says_so() -> None:
    with pytest.raises(ValueError, match="needs cert and key"):
        Auth(mode="cert")
    with pytest.raises(ValueError, match="not one of"):
        Auth(mode="kerberos")
