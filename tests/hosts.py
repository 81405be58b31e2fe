"""Several hosts on one machine: network namespaces joined by veth pairs to a bridge.

Each host is a namespace with one interface (``eth0``, ``10.<net>.0.<n>/24``) whose other
end is on a bridge in the machine's own namespace; a command runs "on" a host with
``ip netns exec``. ``cut(host)`` takes a host's link down (the host is still there, but
unreachable), ``mend(host)`` brings it back. Everything is removed at the end. Needs root
(the tests run as root here) and ``ip`` from iproute2.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        msg = f"ip {' '.join(args)} failed: {done.stderr.strip()}"
        raise RuntimeError(msg)


@dataclass(frozen=True)
class Host:
    """One simulated host: its namespace, its address, the root end of its link."""

    name: str
    ns: str
    addr: str
    link: str

    def command(self, *args: str) -> list[str]:
        """``args`` as run on this host."""
        return ["ip", "netns", "exec", self.ns, *args]

    def python(self, code: str, *args: str, env: dict[str, str] | None = None,
               timeout: float = 60) -> subprocess.CompletedProcess[str]:  # fmt: skip
        """Run ``python -c code args`` on this host, to its end."""
        return subprocess.run(
            self.command(sys.executable, "-c", code, *args), cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
            capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip

    def start(self, *args: str, env: dict[str, str] | None = None,
              log: Path | None = None) -> subprocess.Popen[str]:  # fmt: skip
        """Start ``args`` on this host in a process group of its own (its output to
        ``log``)."""
        with log.open("w") if log else open(os.devnull, "w") as out:
            return subprocess.Popen(
                self.command(*args), cwd=REPO,
                env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
                stdout=out, stderr=subprocess.STDOUT, text=True, start_new_session=True,
            )  # fmt: skip


class Network:
    """Hosts on one bridge (see the module docstring)."""

    def __init__(self, names: Sequence[str]) -> None:
        tag = f"{os.getpid() % 10000}"
        self.bridge = f"plbr{tag}"
        net = 100 + os.getpid() % 100
        self.hosts: dict[str, Host] = {}
        _ip("link", "add", self.bridge, "type", "bridge")
        _ip("link", "set", self.bridge, "up")
        try:
            for n, name in enumerate(names, 1):
                host = Host(name, f"pl{tag}{name}", f"10.{net}.0.{n}", f"pl{tag}v{n}")
                _ip("netns", "add", host.ns)
                self.hosts[name] = host
                _ip("link", "add", host.link, "type", "veth", "peer", "name", f"{host.link}p")
                _ip("link", "set", f"{host.link}p", "netns", host.ns)
                _ip("link", "set", host.link, "master", self.bridge)
                _ip("link", "set", host.link, "up")
                _ip("-n", host.ns, "link", "set", f"{host.link}p", "name", "eth0")
                _ip("-n", host.ns, "addr", "add", f"{host.addr}/24", "dev", "eth0")
                _ip("-n", host.ns, "link", "set", "eth0", "up")
                _ip("-n", host.ns, "link", "set", "lo", "up")
        except BaseException:
            self.close()
            raise

    def __getitem__(self, name: str) -> Host:
        return self.hosts[name]

    def cut(self, name: str) -> None:
        _ip("link", "set", self.hosts[name].link, "down")

    def mend(self, name: str) -> None:
        _ip("link", "set", self.hosts[name].link, "up")

    def close(self) -> None:
        for host in self.hosts.values():
            subprocess.run(["ip", "link", "del", host.link], capture_output=True, check=False)
            subprocess.run(["ip", "netns", "del", host.ns], capture_output=True, check=False)
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True, check=False)


@pytest.fixture
def network() -> Iterator[Network]:
    """Three hosts, ``a``, ``b`` and ``c``, removed after the test."""
    net = Network(("a", "b", "c"))
    try:
        yield net
    finally:
        net.close()
