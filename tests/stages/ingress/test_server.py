"""``pipeline ingress-server`` over HTTP: the real server, started per test on a free port."""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import io
import json
import os
import signal
import socket
import ssl
import subprocess
import tarfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.conftest import cli
from tests.stages.ingress.conftest import (
    STATUS_HEADER,
    Member,
    Reply,
    Server,
    StartIngress,
    form,
    member,
    pack,
    payload_members,
    request,
    sha256,
    tarball,
    upload,
)

pytestmark = pytest.mark.timeout(60)


def listing(server: Server, headers: dict[str, str] | None = None) -> list[dict[str, object]]:
    reply = request(f"{server.base}/api/ingress/v1/uploads", headers=headers)
    assert reply.status == 200, reply.body
    result: list[dict[str, object]] = reply.json()
    return result


def health(server: Server) -> dict[str, object]:
    result: dict[str, object] = request(f"{server.base}/health").json()
    return result


def stored_files(server: Server) -> list[str]:
    return sorted(p.name for p in server.store.iterdir())


# ---------------------------------------------------------------------------- idempotency


def test_stores_once_and_answers_the_same_key_duplicate(ingress_server: Server) -> None:
    data = tarball()
    key = sha256(data)
    first = upload(ingress_server, data, name="analytics-0.tar.gz")
    assert first.status == 201
    assert first.json() == {"status": "stored", "id": key, "name": "analytics-0.tar.gz",
                            "size": len(data)}  # fmt: skip
    again = upload(ingress_server, data, name="analytics-0.tar.gz")
    assert again.status == 200
    assert again.json() == {"status": "duplicate", "id": key, "name": "analytics-0.tar.gz"}
    assert stored_files(ingress_server) == [f"{key}.json", f"{key}.tar.gz"]
    assert (ingress_server.store / f"{key}.tar.gz").read_bytes() == data
    assert health(ingress_server) == {"status": "ok", "stored": 1, "refused": 0, "duplicates": 1}


def test_without_a_key_the_server_hashes_the_upload_itself(ingress_server: Server) -> None:
    data = tarball()
    first = upload(ingress_server, data, key=None)
    assert (first.status, first.json()["id"]) == (201, sha256(data))
    assert upload(ingress_server, data).status == 200  # the shipper's key finds it


def test_idempotency_survives_a_restart(start_ingress: StartIngress) -> None:
    data = tarball()
    first = start_ingress()
    assert upload(first, data).status == 201
    assert first.stop() == 0
    second = start_ingress()
    again = upload(second, data)
    assert (again.status, again.json()["status"]) == (200, "duplicate")
    assert [e["id"] for e in listing(second)] == [sha256(data)]
    assert health(second)["stored"] == 1


def test_concurrent_uploads_of_one_key_store_it_once(ingress_server: Server) -> None:
    data = tarball({f"part{i}.json": b"[]" for i in range(50)})
    with ThreadPoolExecutor(8) as pool:
        statuses = sorted(pool.map(lambda _: upload(ingress_server, data).status, range(8)))
    assert statuses == [200] * 7 + [201]
    assert stored_files(ingress_server) == [f"{sha256(data)}.json", f"{sha256(data)}.tar.gz"]


def test_a_key_that_is_not_the_uploads_hash_is_refused(ingress_server: Server) -> None:
    data = tarball()
    reply = upload(ingress_server, data, key=sha256(b"something else"))
    assert reply.status == 400
    assert "is not the SHA-256 of the file received" in reply.json()["reason"]
    assert listing(ingress_server) == []


# ---------------------------------------------------------------------------- refusals


def test_another_content_type_is_415_unless_configured(start_ingress: StartIngress) -> None:
    data = tarball()
    default = start_ingress()
    reply = upload(default, data, content_type="application/x-tgz")
    assert reply.status == 415
    assert reply.json() == {
        "status": "refused",
        "reason": "the file part's content type is 'application/x-tgz'; this server takes "
        "application/vnd.pipeline.payload+tgz (--content-type)",
    }
    other = start_ingress("--content-type", "application/x-tgz", "--content-type",
                          "application/vnd.redhat.tower.tower_payload+tgz",
                          store=default.store.parent / "other")  # fmt: skip
    assert upload(other, data, content_type="application/x-tgz").status == 201


def test_an_upload_over_max_size_is_a_json_413(start_ingress: StartIngress) -> None:
    server = start_ingress("--max-size", "4K")
    big = tarball({"noise.json": os.urandom(16 * 1024)})
    reply = upload(server, big)
    assert reply.status == 413
    assert reply.json()["reason"].startswith("the upload is larger than the 4,096 bytes")
    # chunked, no Content-Length: the server counts as it reads
    body, form_type = form(big)
    chunks = iter([body[i : i + 1000] for i in range(0, len(body), 1000)])
    chunked = request(server.url, chunks, {"Content-Type": form_type})
    assert (chunked.status, chunked.json()["status"]) == (413, "refused")
    assert upload(server, tarball()).status == 201  # and it still serves
    assert len(listing(server)) == 1


def _replaced(name: str, new: Member | None) -> list[Member]:
    """A valid payload's members with ``name`` replaced by ``new`` (or dropped)."""
    out = [new if m[0].name == name else m for m in payload_members()]
    return [m for m in out if m is not None]


def _manifest(manifest: object) -> bytes:
    return pack(_replaced("./manifest.json", member("./manifest.json",
                                                   json.dumps(manifest).encode())))  # fmt: skip


_LISTED = {"usage.json": "1.0", "config.json": "1.0", "data_collection_status.csv": "1.0"}

HOSTILE: list[tuple[str, Callable[[], bytes], str]] = [
    ("path traversal", lambda: pack([member("../x", b"{}"), *payload_members()]),
     "member name '../x' climbs out with '..'"),
    ("traversal inside", lambda: pack([member("./a/../../x", b"{}"), *payload_members()]),
     "member name './a/../../x' climbs out with '..'"),
    ("absolute name", lambda: pack([member("/etc/x", b"{}"), *payload_members()]),
     "member name '/etc/x' is absolute"),
    ("sub-directory", lambda: pack([*payload_members(), member("./sub/x.json", b"{}")]),
     "member name './sub/x.json' is not directly ./<name>"),
    ("no ./ prefix", lambda: pack([member("x.json", b"{}"), *payload_members()]),
     "member name 'x.json' is not directly ./<name>"),
    ("symlink member", lambda: pack([member("./usage.json", kind=tarfile.SYMTYPE,
                                            link="/etc/passwd"), *payload_members()[1:]]),
     "member './usage.json' is a symbolic link (to '/etc/passwd')"),
    ("hard link member", lambda: pack([*payload_members(), member(
        "./again.json", kind=tarfile.LNKTYPE, link="./config.json")]),
     "member './again.json' is a hard link (to './config.json')"),
    ("directory member", lambda: pack([member("./d", kind=tarfile.DIRTYPE), *payload_members()]),
     "member './d' is a directory"),
    ("device member", lambda: pack([member("./tty", kind=tarfile.CHRTYPE), *payload_members()]),
     "member './tty' is a device"),
    ("member twice", lambda: pack([*payload_members(), member("./config.json", b"{}")]),
     "member './config.json' appears twice"),
    ("missing manifest", lambda: pack(_replaced("./manifest.json", None)),
     "the required member ./manifest.json is missing"),
    ("missing config", lambda: pack(_replaced("./config.json", None)),
     "the required member ./config.json is missing"),
    ("missing status", lambda: pack(_replaced("./data_collection_status.csv", None)),
     "the required member ./data_collection_status.csv is missing"),
    ("manifest not JSON", lambda: pack(_replaced("./manifest.json",
                                                 member("./manifest.json", b"{usage"))),
     "manifest.json is not JSON"),
    ("manifest a list", lambda: _manifest(list(_LISTED)),
     "manifest.json holds a list, not an object of file name -> version"),
    ("version not a string", lambda: _manifest({**_LISTED, "usage.json": 1}),
     "manifest.json maps 'usage.json' to 1, not to a version string"),
    ("member not in the manifest", lambda: _manifest({k: v for k, v in _LISTED.items()
                                                      if k != "usage.json"}),
     "member ./usage.json is not listed in manifest.json"),
    ("manifest lists a missing member", lambda: _manifest({**_LISTED, "gone.csv": "1.0"}),
     "manifest.json lists 'gone.csv' but the tarball has no member ./gone.csv"),
    ("manifest lists itself", lambda: _manifest({**_LISTED, "manifest.json": "1.0"}),
     "manifest.json lists itself"),
    ("bad status header", lambda: pack(_replaced("./data_collection_status.csv", member(
        "./data_collection_status.csv", b"since,until,file_name,status\n"))),
     "data_collection_status.csv starts with 'since,until,file_name,status', not the header "
     f"{STATUS_HEADER!r}"),
    ("not gzip", lambda: pack(payload_members(), compress=False),
     "the file is not gzip-compressed"),
    ("gzip of no tar", lambda: gzip.compress(b"not a tar archive at all\n" * 40),
     "the gzip stream does not hold a tar archive"),
    ("cut short", lambda: (t := tarball())[: len(t) // 2],
     "the gzip stream is damaged or cut short"),
]  # fmt: skip


@pytest.mark.parametrize(("build", "reason"), [c[1:] for c in HOSTILE],
                         ids=[c[0] for c in HOSTILE])  # fmt: skip
def test_a_hostile_or_malformed_tarball_is_refused_saying_why(
    ingress_server: Server, build: Callable[[], bytes], reason: str
) -> None:
    reply = upload(ingress_server, build())
    assert reply.status == 400
    assert reply.json()["status"] == "refused"
    assert reply.json()["reason"].startswith(reason), reply.json()["reason"]
    assert stored_files(ingress_server) == []  # nor a temporary file left behind


def test_a_request_without_the_file_field_is_refused(ingress_server: Server) -> None:
    body, form_type = form(tarball(), field="payload")
    reply = request(ingress_server.url, body, {"Content-Type": form_type})
    assert (reply.status, reply.json()["reason"]) == (
        400, "no 'file' field: send the tarball as the multipart field 'file'")  # fmt: skip
    plain = request(ingress_server.url, tarball(), {"Content-Type": "application/gzip"})
    assert plain.status == 400
    assert "not multipart/form-data" in plain.json()["reason"]


def _bomb_of_one_member() -> bytes:
    return tarball({"usage.json": b"0" * 1024**2})


def _bomb_of_headers() -> bytes:
    # sizes that add up to nothing: only the uncompressed stream's count stops this one
    return pack([*(member(f"./e{i}.json") for i in range(300)), *payload_members()])


def _bomb_by_its_header() -> bytes:
    # a header that claims 1 GiB and no data after it: refused from the header, unread
    claim = tarfile.TarInfo("./usage.json")
    claim.size = 1024**3
    return gzip.compress(claim.tobuf(tarfile.GNU_FORMAT), mtime=0)


@pytest.mark.parametrize("build", [_bomb_of_one_member, _bomb_of_headers, _bomb_by_its_header])
def test_a_tarball_unpacking_past_max_unpacked_is_refused(
    start_ingress: StartIngress, build: Callable[[], bytes]
) -> None:
    data = build()
    assert len(data) < 10_000  # small on the wire
    server = start_ingress("--max-unpacked", "64K")
    reply = upload(server, data)
    assert reply.status == 400
    assert reply.json()["reason"] == (
        "the tarball unpacks to more than 65,536 bytes (--max-unpacked)")  # fmt: skip


def test_the_default_unpacked_limit_takes_what_64k_refuses(start_ingress: StartIngress) -> None:
    assert upload(start_ingress(), _bomb_of_one_member()).status == 201


def test_refusals_are_logged_and_counted(ingress_server: Server) -> None:
    upload(ingress_server, tarball(), content_type="text/plain")
    upload(ingress_server, tarball(), key="0" * 64)
    upload(ingress_server, pack(_replaced("./config.json", None)))
    assert upload(ingress_server, tarball()).status == 201
    assert health(ingress_server) == {"status": "ok", "stored": 1, "refused": 3, "duplicates": 0}
    refused = [line for line in ingress_server.log().splitlines() if " refused " in line]
    assert len(refused) == 3
    assert all("refused 127.0.0.1: POST /api/ingress/v1/upload: " in line for line in refused)
    assert "415 the file part's content type is 'text/plain'" in refused[0]
    assert "400 the Idempotency-Key '0000" in refused[1]
    assert "400 the required member ./config.json is missing" in refused[2]


# ---------------------------------------------------------------------------- authentication


@pytest.mark.parametrize("given", ["option", "environment"])
def test_a_bearer_token_is_required_when_set(start_ingress: StartIngress, given: str) -> None:
    if given == "option":
        server = start_ingress("--token", "s3cret")
    else:
        server = start_ingress(env={"INGRESS_TOKEN": "s3cret"})
    data = tarball()
    missing = upload(server, data)
    assert missing.status == 401
    assert missing.headers["WWW-Authenticate"] == 'Bearer realm="pipeline ingress"'
    wrong = upload(server, data, headers={"Authorization": "Bearer s3cre"})
    assert (wrong.status, wrong.json()["reason"]) == (401, "the bearer token is wrong")
    assert upload(server, data, headers={"Authorization": "Bearer s3cret"}).status == 201
    assert request(f"{server.base}/api/ingress/v1/uploads").status == 401
    assert len(listing(server, headers={"Authorization": "Bearer s3cret"})) == 1
    assert request(f"{server.base}/health").status == 200
    assert health(server)["refused"] == 3


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_basic_credentials_are_required_when_set(start_ingress: StartIngress) -> None:
    server = start_ingress("--basic", "shipper:pa:ss")
    data = tarball()
    missing = upload(server, data)
    assert missing.status == 401
    assert missing.headers["WWW-Authenticate"].startswith('Basic realm="pipeline ingress"')
    assert upload(server, data, headers=_basic("shipper", "pa:s")).status == 401
    assert upload(server, data, headers=_basic("other", "pa:ss")).status == 401
    assert upload(server, data, headers=_basic("shipper", "pa:ss")).status == 201


def test_token_and_basic_are_alternatives(start_ingress: StartIngress) -> None:
    server = start_ingress("--token", "t0ken", env={"INGRESS_BASIC": "shipper:pw"})
    missing = upload(server, tarball())
    assert missing.status == 401
    assert "Bearer" in missing.headers["WWW-Authenticate"]
    assert "Basic" in missing.headers["WWW-Authenticate"]
    assert upload(server, tarball(), headers={"Authorization": "Bearer t0ken"}).status == 201
    other = tarball({"other.json": b"{}"})
    assert upload(server, other, headers=_basic("shipper", "pw")).status == 201


def _identity(who: object) -> dict[str, str]:
    return {"x-rh-identity": base64.b64encode(json.dumps(who).encode()).decode()}


def test_an_identity_header_is_required_with_identity(start_ingress: StartIngress) -> None:
    server = start_ingress("--identity")
    data = tarball()
    refusals = {
        "missing": upload(server, data),
        "not base64": upload(server, data, headers={"x-rh-identity": "{not base64}"}),
        "no identity": upload(server, data, headers=_identity({"user": "x"})),
    }
    assert {k: r.status for k, r in refusals.items()} == dict.fromkeys(refusals, 401)
    assert "x-rh-identity header is required" in refusals["missing"].json()["reason"]
    assert "not base64 of JSON" in refusals["not base64"].json()["reason"]
    assert "no 'identity' object" in refusals["no identity"].json()["reason"]
    assert all("WWW-Authenticate" in r.headers for r in refusals.values())
    who = {"identity": {"type": "User", "account_number": "0000001",
                        "internal": {"org_id": "000001"}}}  # fmt: skip
    assert upload(server, data, headers=_identity(who)).status == 201


def _openssl(folder: Path, *args: str) -> None:
    subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True)


_EC = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")


def _signed(folder: Path, name: str, serial: int, extensions: str) -> None:
    (folder / f"{name}.ext").write_text(extensions)
    _openssl(folder, "req", "-new", *_EC, "-keyout", f"{name}.key", "-out", f"{name}.csr",
             "-subj", f"/CN={name}")  # fmt: skip
    _openssl(folder, "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
             "-set_serial", str(serial), "-days", "2", "-out", f"{name}.crt",
             "-extfile", f"{name}.ext")  # fmt: skip


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A CA, a server certificate for 127.0.0.1 and a client certificate it signed, and a
    client certificate no one signed."""
    folder = tmp_path_factory.mktemp("certs")
    _openssl(folder, "req", "-x509", *_EC, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
             "-subj", "/CN=ingress test CA")  # fmt: skip
    _signed(folder, "server", 2, "basicConstraints=critical,CA:FALSE\n"
            "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")  # fmt: skip
    _signed(
        folder, "client", 3, "basicConstraints=critical,CA:FALSE\nextendedKeyUsage=clientAuth\n"
    )
    _openssl(folder, "req", "-x509", *_EC, "-keyout", "rogue.key", "-out", "rogue.crt",
             "-days", "2", "-subj", "/CN=rogue")  # fmt: skip
    yield folder


def _client(certs: Path, cert: str | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=certs / "ca.crt")
    if cert is not None:
        ctx.load_cert_chain(certs / f"{cert}.crt", certs / f"{cert}.key")
    return ctx


def test_mutual_tls_takes_only_clients_the_ca_signed(
    start_ingress: StartIngress, certs: Path
) -> None:
    server = start_ingress("--tls-cert", str(certs / "server.crt"),
                           "--tls-key", str(certs / "server.key"),
                           "--client-ca", str(certs / "ca.crt"))  # fmt: skip
    assert server.url.startswith("https://127.0.0.1:")
    data = tarball()
    anonymous = upload(server, data, context=_client(certs))
    assert anonymous.status == 401
    assert anonymous.json()["reason"] == "a client certificate is required (mutual TLS)"
    with pytest.raises(OSError):  # the handshake fails: no one signed this one
        upload(server, data, context=_client(certs, "rogue"))
    assert upload(server, data, context=_client(certs, "client")).status == 201
    assert request(f"{server.base}/health", context=_client(certs)).json()["stored"] == 1


# ---------------------------------------------------------------------------- faults


def test_fail_first_fails_that_many_uploads_then_stores(start_ingress: StartIngress) -> None:
    server = start_ingress("--fail-first", "2")
    data = tarball()
    replies = [upload(server, data) for _ in range(3)]
    assert [r.status for r in replies] == [500, 500, 201]
    assert replies[0].json()["status"] == "failed"
    assert "--fail-first 2" in replies[1].json()["reason"]
    assert upload(server, data).status == 200
    assert len(listing(server)) == 1


def test_fail_status_sets_what_the_failures_answer(start_ingress: StartIngress) -> None:
    server = start_ingress("--fail-first", "1", "--fail-status", "503")
    assert [upload(server, tarball()).status for _ in range(2)] == [503, 201]


def test_delay_holds_the_answer_past_a_clients_timeout(start_ingress: StartIngress) -> None:
    server = start_ingress("--delay", "1")
    data = tarball()
    with pytest.raises(TimeoutError):
        upload(server, data, timeout=0.3)
    # the upload was handled before the answer was held: it is stored
    deadline = time.monotonic() + 5
    while health(server)["stored"] == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [e["id"] for e in listing(server)] == [sha256(data)]
    t0 = time.monotonic()
    again = upload(server, data, timeout=5)
    assert again.status == 200
    assert time.monotonic() - t0 >= 1.0


# ---------------------------------------------------------------------------- reading back


def test_listing_entries_and_payloads_return_what_was_stored(ingress_server: Server) -> None:
    first = tarball({"usage.json": b'{"groups": 1}', "ages.csv": b"a,b\n1,2\n"})
    second = tarball({"usage.json": b'{"groups": 2}'})
    before = dt.datetime.now(dt.UTC)
    assert upload(ingress_server, first, name="analytics-0.tar.gz").status == 201
    assert upload(ingress_server, second, name="analytics-1.tar.gz").status == 201
    entries = listing(ingress_server)
    assert [(e["id"], e["name"], e["size"]) for e in entries] == [
        (sha256(first), "analytics-0.tar.gz", len(first)),
        (sha256(second), "analytics-1.tar.gz", len(second)),
    ]
    with tarfile.open(fileobj=io.BytesIO(first)) as tar:
        sizes = {m.name.removeprefix("./"): m.size for m in tar}
    assert entries[0]["members"] == sizes
    listed = ["usage.json", "ages.csv", "config.json", "data_collection_status.csv"]
    assert entries[0]["manifest"] == dict.fromkeys(listed, "1.0")
    received = dt.datetime.fromisoformat(str(entries[0]["received"]))
    assert received.utcoffset() == dt.timedelta(0)
    assert before <= received <= dt.datetime.fromisoformat(str(entries[1]["received"]))
    one = request(f"{ingress_server.base}/api/ingress/v1/uploads/{sha256(first)}")
    assert one.json() == entries[0]
    payload = request(f"{ingress_server.base}/api/ingress/v1/uploads/{sha256(second)}/payload")
    assert (payload.status, payload.body) == (200, second)
    stored_entry = json.loads((ingress_server.store / f"{sha256(first)}.json").read_text())
    assert stored_entry == entries[0]
    for path in (f"uploads/{'0' * 64}", f"uploads/{'0' * 64}/payload", "uploads/x/y/z"):
        missing = request(f"{ingress_server.base}/api/ingress/v1/{path}")
        assert (missing.status, missing.json()["status"]) == (404, "error"), path


def test_a_crash_leftover_is_cleared_and_never_listed(start_ingress: StartIngress,
                                                      tmp_path: Path) -> None:  # fmt: skip
    data = tarball()
    store = tmp_path / "store"
    store.mkdir()
    (store / ".incoming-abc.tmp").write_bytes(data[:100])  # a receipt broken off
    (store / f"{sha256(data)}.tar.gz").write_bytes(data)  # a payload whose entry was not written
    orphan = "1" * 64  # an entry whose payload is gone (not written by this server)
    (store / f"{orphan}.json").write_text(json.dumps({"id": orphan, "received": "x"}))
    server = start_ingress()
    assert listing(server) == []
    assert not (store / ".incoming-abc.tmp").exists()
    assert f"{orphan}.json is not an entry with its payload; ignored" in server.log()
    assert upload(server, data).status == 201  # stored again, not taken for a duplicate


# ---------------------------------------------------------------------------- the command


def test_sigint_stops_it_cleanly(ingress_server: Server) -> None:
    assert upload(ingress_server, tarball()).status == 201
    assert ingress_server.stop(signal.SIGINT) == 0
    assert "stopped: 1 stored (1 this run), 0 duplicates, 0 refused" in ingress_server.log()


def test_a_port_in_use_is_a_clear_failure(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        ran = cli("ingress-server", "--bind", f"127.0.0.1:{port}", "--store",
                  str(tmp_path / "store"), timeout=20)  # fmt: skip
    assert ran.returncode == 1
    assert ran.stdout == ""
    assert f"cannot listen on 127.0.0.1:{port}" in ran.stderr


@pytest.mark.parametrize(("args", "said"), [
    (["--client-ca", "ca.crt"], "--client-ca needs --tls-cert"),
    (["--tls-cert", "server.crt"], "--tls-cert and --tls-key go together"),
    (["--basic", "nocolon"], "takes USER:PASSWORD"),
    (["--bind", "localhost"], "--bind takes HOST:PORT"),
    (["--max-size", "lots"], "expected a size such as"),
    (["--fail-first", "1", "--fail-status", "200"], "is not a failure"),
])  # fmt: skip
def test_options_that_do_not_fit_are_usage_errors(
    tmp_path: Path, args: list[str], said: str
) -> None:
    ran = cli("ingress-server", "--store", str(tmp_path / "store"), *args, timeout=20)
    assert (ran.returncode, ran.stdout) == (2, "")
    assert said in ran.stderr


def test_help_teaches_every_option_and_shows_examples() -> None:
    ran = cli("ingress-server", "--help", timeout=20)
    assert ran.returncode == 0
    for option in ("--bind", "--store", "--max-size", "--max-unpacked", "--content-type",
                   "--token", "--basic", "--identity", "--tls-cert", "--tls-key",
                   "--client-ca", "--fail-first", "--fail-status", "--delay"):  # fmt: skip
        assert option in ran.stdout
    assert "examples:" in ran.stdout
    assert "curl -F" in ran.stdout
    assert "/api/ingress/v1/uploads" in ran.stdout


def test_reply_bodies_are_json(ingress_server: Server) -> None:
    reply: Reply = request(f"{ingress_server.base}/nowhere")
    assert reply.status == 404
    assert reply.headers["Content-Type"].startswith("application/json")
