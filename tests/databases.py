"""A MariaDB server of the tests' own: initialised in a temporary folder from the installed
binaries, listening on a free 127.0.0.1 port, removed at the end."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pymysql

from tests.brokers import HOST, free_port
from tests.servers import ServerProcess, binary


class MariaDB(ServerProcess):
    """``root`` with no password on ``port``; ``database(name)`` makes an empty one."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.data = folder / "data"
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        user = ["--user=root"] if os.getuid() == 0 else []
        subprocess.run(
            [binary("mariadb-install-db", "mariadb-server"), "--no-defaults",
             f"--datadir={self.data}", "--auth-root-authentication-method=normal",
             "--skip-test-db", *user],
            check=True, capture_output=True,
        )  # fmt: skip
        self.args = [
            binary("mariadbd", "mariadb-server"), "--no-defaults", f"--datadir={self.data}",
            f"--socket={folder / 'mysqld.sock'}", f"--port={self.port}",
            f"--bind-address={HOST}", f"--pid-file={folder / 'mysqld.pid'}",
            f"--log-error={folder / 'error.log'}", "--skip-log-bin",
            "--innodb-buffer-pool-size=32M", *user,
        ]  # fmt: skip

    def start(self) -> None:
        self.proc = subprocess.Popen(
            self.args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                pymysql.connect(host=HOST, port=self.port, user="root", password="").close()
                return
            except pymysql.err.OperationalError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    log = (self.folder / "error.log").read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"MariaDB did not start:\n{log}") from None
                time.sleep(0.1)

    def database(self, name: str) -> str:
        """A new empty database; its ``mysql://`` URL."""
        conn = pymysql.connect(host=HOST, port=self.port, user="root", password="")
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
            cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        conn.close()
        return f"mysql://root@{HOST}:{self.port}/{name}"
