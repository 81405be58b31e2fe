"""Who may talk to a frame.

* With ``transport: ipc`` (the default) every endpoint is a unix socket in an owner-only
  directory (mode 0700): only the user who started the frame (and root) can reach them.
* With ``transport: tcp`` every socket is a tcp port, so every one uses CURVE (ZeroMQ's
  public-key encryption and authentication): the workers' inboxes, the supervisor's
  control and stats sockets, and the api and status endpoints for people and tools. Each
  bound socket serves with the frame's server key and lets in only the public keys in the
  frame's ``authorized/`` folder; a peer with another key (or none) is refused, and the
  log says so. The keys are the topology's ``keys`` folder (``pipeline keys DIR`` makes
  one, to share between hosts), or made afresh for each run in ``<run_dir>/curve/``
  (owner-only). Local tools (``pipeline status``, ...) connect with the frame's client
  key, found through the frame's record; a client elsewhere needs a key copied into
  ``authorized/`` and ``server.key``, in a folder given to ``secure_client``.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Any

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator
from zmq.utils import z85

from pipeline.errors import UsageError

log = logging.getLogger("pipeline.security")

SERVER = "server"
CLIENT = "client"
#: the folder of a keys folder that holds the public keys allowed to connect
AUTHORIZED = "authorized"


def key_files(clients: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The files ``make_keys`` writes, relative to its folder: each certificate's public
    and secret halves, then the public keys it authorizes.

    >>> key_files()
    ('client.key', 'client.key_secret', 'server.key', 'server.key_secret', 'authorized/client.key')
    """
    halves = sorted(f"{n}.key{s}" for n in (SERVER, CLIENT, *clients) for s in ("", "_secret"))
    return (*halves, *sorted(f"{AUTHORIZED}/{n}.key" for n in (CLIENT, *clients)))


class Authorized:
    """The public keys (``*.key`` certificate files) in a folder, read when asked; a peer
    whose key is not there is refused, and said so in the log once per key."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.refused: set[str] = set()

    def callback(self, domain: str, key: bytes) -> bool:
        for f in self.folder.glob("*.key"):
            try:
                public, _ = zmq.auth.load_certificate(f)
            except (OSError, ValueError):
                continue  # not a certificate: ignored
            if public == key:
                return True
        shown = z85.encode(key).decode() if len(key) == 32 else key.hex()
        if shown not in self.refused:
            self.refused.add(shown)
            log.warning("refused a peer with the CURVE key %s: it is not among the keys "
                        "authorized for this frame (%s)", shown, self.folder)  # fmt: skip
        return False


class Keys:
    """A frame's CURVE keys in ``folder`` (as ``pipeline keys`` makes them): ``server.key``
    and ``server.key_secret`` (what every bound socket serves with), ``client.key`` and
    ``client.key_secret`` (what the frame's own processes connect with), and
    ``authorized/`` (the public keys allowed to connect)."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        self.authorized = self.folder / AUTHORIZED
        try:
            self.server_public, self.server_secret = zmq.auth.load_certificate(
                self.folder / f"{SERVER}.key_secret"
            )
            self.client_public, self.client_secret = zmq.auth.load_certificate(
                self.folder / f"{CLIENT}.key_secret"
            )
        except (OSError, ValueError) as exc:
            msg = (f"{self.folder}: not a folder of frame keys ({exc}); make one with "
                   "pipeline keys DIR")  # fmt: skip
            raise UsageError(msg) from None

    def secure_server(self, sock: zmq.Socket[Any]) -> None:
        """Make ``sock`` (before it binds) serve CURVE with the frame's key."""
        sock.curve_server = True
        sock.curve_secretkey = self.server_secret
        sock.curve_publickey = self.server_public

    def secure_client(self, sock: zmq.Socket[Any]) -> None:
        """Make ``sock`` (before it connects) a CURVE client of the frame's sockets."""
        assert self.client_secret is not None
        sock.curve_serverkey = self.server_public
        sock.curve_publickey = self.client_public
        sock.curve_secretkey = self.client_secret

    def authenticator(self, ctx: zmq.Context[Any]) -> ThreadAuthenticator:
        """The authenticator that lets in only the authorized keys, for the CURVE servers of
        ``ctx`` (one per process: ZeroMQ asks it at every connection)."""
        auth = ThreadAuthenticator(ctx)
        auth.start()
        # asked at every connection, so a key copied in while the frame runs is honoured
        auth.configure_curve_callback(domain="*", credentials_provider=Authorized(self.authorized))
        return auth


def make_keys(folder: str | os.PathLike[str], clients: tuple[str, ...] = ()) -> Keys:
    """Make a frame's keys in ``folder`` (owner-only; created, or an empty one): its server
    and client certificates, the client's public key authorized, and for each name in
    ``clients`` one more certificate, also authorized (for a host's workers, a tool)."""
    d = Path(folder)
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    if any(d.iterdir()):
        msg = f"{d} is not empty: give a new folder (keys are never overwritten)"
        raise ValueError(msg)
    authorized = d / AUTHORIZED
    authorized.mkdir(mode=0o700)
    zmq.auth.create_certificates(d, SERVER)
    for name in (CLIENT, *clients):
        public_file, _ = zmq.auth.create_certificates(d, name)
        shutil.copy(public_file, authorized / Path(public_file).name)
    for f in (*d.iterdir(), *authorized.iterdir()):
        if f.is_file():
            os.chmod(f, 0o600)
    return Keys(d)


class CurveServer:
    """The supervisor's keys (``keys``, else made afresh for the run in
    ``<run_dir>/curve``) and the authenticator that checks its clients."""

    def __init__(self, ctx: zmq.Context[Any], run_dir: Path, keys: Path | None = None) -> None:
        if keys is None:
            self.folder = run_dir / "curve"
            if self.folder.exists():
                shutil.rmtree(self.folder)
            self.keys = make_keys(self.folder)
        else:
            self.folder = Path(keys)
            self.keys = Keys(self.folder)
        self.auth = self.keys.authenticator(ctx)

    def secure(self, sock: zmq.Socket[Any]) -> None:
        """Make ``sock`` (before it binds) a CURVE server."""
        self.keys.secure_server(sock)

    def stop(self) -> None:
        self.auth.stop()


def secure_client(sock: zmq.Socket[Any], folder: str | os.PathLike[str]) -> None:
    """Make ``sock`` (before it connects) a CURVE client with the certificates in
    ``folder`` (``server.key`` and ``client.key_secret``)."""
    d = Path(folder)
    server_public, _ = zmq.auth.load_certificate(d / f"{SERVER}.key")
    public, secret = zmq.auth.load_certificate(d / f"{CLIENT}.key_secret")
    if secret is None:
        msg = f"{d / (CLIENT + '.key_secret')} holds no secret key"
        raise ValueError(msg)
    sock.curve_serverkey = server_public
    sock.curve_publickey = public
    sock.curve_secretkey = secret
