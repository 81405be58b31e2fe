"""Who may control a frame.

* With ``transport: ipc`` (the default) the control and status endpoints are unix sockets in
  an owner-only directory (mode 0700): only the user who started the frame (and root) can
  reach them.
* With ``transport: tcp`` they are tcp ports, so they require CURVE (ZeroMQ's public-key
  encryption and authentication). The frame makes a server and a client certificate in
  ``<run_dir>/curve/`` (owner-only) and accepts only clients whose public key is in
  ``<run_dir>/curve/authorized/``: its own client certificate, which local tools such as
  ``pipeline status`` use, and any public key you copy there (a client elsewhere then needs
  that key's secret file and ``server.key``, in a folder given to ``secure_client``, as
  ``RemoteFrame`` does with the record's ``curve``).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

SERVER = "server"
CLIENT = "client"


class Authorized:
    """The public keys (``*.key`` certificate files) in a folder, read when asked."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def callback(self, domain: str, key: bytes) -> bool:
        for f in self.folder.glob("*.key"):
            try:
                public, _ = zmq.auth.load_certificate(f)
            except (OSError, ValueError):
                continue  # not a certificate: ignored
            if public == key:
                return True
        return False


class CurveServer:
    """The certificates of one frame and the authenticator that checks its clients."""

    def __init__(self, ctx: zmq.Context[Any], run_dir: Path) -> None:
        self.folder = run_dir / "curve"
        if self.folder.exists():
            shutil.rmtree(self.folder)
        self.folder.mkdir(mode=0o700)
        authorized = self.folder / "authorized"
        authorized.mkdir(mode=0o700)
        zmq.auth.create_certificates(self.folder, SERVER)
        public_file, _ = zmq.auth.create_certificates(self.folder, CLIENT)
        shutil.copy(public_file, authorized / Path(public_file).name)
        for f in self.folder.iterdir():
            if f.is_file():
                os.chmod(f, 0o600)
        self.public, self.secret = zmq.auth.load_certificate(self.folder / f"{SERVER}.key_secret")
        self.auth = ThreadAuthenticator(ctx)
        self.auth.start()
        # asked at every connection, so a key copied in while the frame runs is honoured
        self.auth.configure_curve_callback(domain="*", credentials_provider=Authorized(authorized))

    def secure(self, sock: zmq.Socket[Any]) -> None:
        """Make ``sock`` (before it binds) a CURVE server."""
        sock.curve_server = True
        sock.curve_secretkey = self.secret
        sock.curve_publickey = self.public

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
