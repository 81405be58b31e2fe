"""Group names, PIs and user names from an LDAP directory (ldap3), as lurge read them.

Groups are searched under ``group_base`` for ``gid_attr`` (default ``gidNumber``) and named
by ``name_attr`` (``cn``); ``pi_attr`` holds the DN of the group's PI, whose ``pi_name_attr``
(``sn``, the surname) is the PI's name in the reports. Users are searched under
``user_base`` by ``uid_attr`` (``uidNumber``) and named by ``user_name_attr`` (``uid``). The
ids of a run are asked for in a few searches (``(|(gidNumber=1)(gidNumber=2)...)``, in
chunks), not one per id.

Where and how to bind never comes from the topology's text: the URL, bind DN and password
are read from the environment (``LDAP_URL``, ``LDAP_BIND_DN``, ``LDAP_PASSWORD`` or the file
named by ``LDAP_PASSWORD_FILE``); without a bind DN the bind is anonymous. ``ldaps://``
URLs use TLS; ``start_tls`` upgrades an ``ldap://`` connection. Either way the server's
certificate must be valid: signed by a CA the system trusts, or by the one in the PEM file
named by ``LDAP_CA_FILE`` (a site's own CA), and naming the host.

A directory that cannot be reached raises ``IdentitiesUnavailable``; the resolver then uses
the system databases and the run summary says so.
"""

from __future__ import annotations

import contextlib
import os
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import ldap3
from ldap3.core.exceptions import LDAPException

from stages.wrstat.identities import NO_PI, Group, IdentitiesUnavailable

#: ids per search filter
CHUNK = 200


@dataclass(frozen=True)
class LdapConfig:
    url: str
    group_base: str
    user_base: str
    bind_dn: str | None = None
    password: str | None = None
    group_filter: str = "(objectClass=posixGroup)"
    gid_attr: str = "gidNumber"
    name_attr: str = "cn"
    pi_attr: str = "owner"
    pi_name_attr: str = "sn"
    user_filter: str = "(objectClass=posixAccount)"
    uid_attr: str = "uidNumber"
    user_name_attr: str = "uid"
    start_tls: bool = False
    #: PEM file of the CA that signed the server's certificate (else the system's CAs)
    ca_file: str | None = None
    timeout: float = 10.0

    @classmethod
    def from_env(cls, group_base: str, user_base: str, **options: object) -> LdapConfig:
        """The server and the credentials from the environment (see the module docstring);
        search bases and attribute names as stage parameters."""
        url = os.environ.get("LDAP_URL")
        if not url:
            msg = "LDAP identities need LDAP_URL in the environment (ldap://host or ldaps://host)"
            raise IdentitiesUnavailable(msg)
        password = os.environ.get("LDAP_PASSWORD")
        file = os.environ.get("LDAP_PASSWORD_FILE")
        if file:
            try:
                password = Path(file).read_text(encoding="utf-8").splitlines()[0]
            except (OSError, IndexError) as exc:
                msg = f"cannot read LDAP_PASSWORD_FILE {file}: {exc}"
                raise IdentitiesUnavailable(msg) from None
        options.setdefault("ca_file", os.environ.get("LDAP_CA_FILE") or None)
        return cls(url, group_base, user_base, os.environ.get("LDAP_BIND_DN") or None,
                   password, **options)  # type: ignore[arg-type]  # fmt: skip


class LdapIdentities:
    """Answers from the directory (see the module docstring); one connection per run."""

    def __init__(self, config: LdapConfig) -> None:
        self.config = config
        self.name = f"LDAP {config.url}"
        self._conn: ldap3.Connection | None = None
        self._pis: dict[str, str] = {}

    def _connection(self) -> ldap3.Connection:
        if self._conn is None:
            c = self.config
            seconds = max(1, round(c.timeout))  # ldap3 packs it into a socket option: whole seconds
            if c.ca_file and not os.path.isfile(c.ca_file):
                msg = f"{self.name}: LDAP_CA_FILE {c.ca_file} is not a file"
                raise IdentitiesUnavailable(msg)
            # ldap3 trusts any certificate unless told otherwise: require a valid one
            tls = ldap3.Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=c.ca_file)
            server = ldap3.Server(c.url, connect_timeout=seconds, get_info=ldap3.NONE, tls=tls)
            conn = ldap3.Connection(server, user=c.bind_dn, password=c.password,
                                    receive_timeout=seconds, read_only=True)  # fmt: skip
            try:
                conn.open()
                if c.start_tls:
                    conn.start_tls()
                bound = conn.bind()
            except LDAPException as exc:
                _drop(conn)
                raise IdentitiesUnavailable(f"{self.name} cannot be reached: {exc}") from None
            if not bound:
                why = conn.result.get("description")
                _drop(conn)
                raise IdentitiesUnavailable(
                    f"{self.name} refused the bind as {c.bind_dn or 'anonymous'}: {why}; "
                    "check LDAP_BIND_DN and the password"
                )
            self._conn = conn
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            _drop(self._conn)
            self._conn = None

    def _search(
        self, base: str, kind: str, attr: str, ids: list[int], attrs: list[str]
    ) -> list[ldap3.Entry]:
        conn = self._connection()
        found: list[ldap3.Entry] = []
        for i in range(0, len(ids), CHUNK):
            alternatives = "".join(f"({attr}={n})" for n in ids[i : i + CHUNK])
            query = f"(&{kind}(|{alternatives}))"
            try:
                conn.search(base, query, search_scope=ldap3.SUBTREE, attributes=attrs)
            except LDAPException as exc:
                self.close()  # the next lookup connects afresh
                msg = f"{self.name}: the search under {base} failed: {exc}"
                raise IdentitiesUnavailable(msg) from None
            found.extend(conn.entries)
        return found

    def groups(self, gids: Iterable[int]) -> dict[int, Group]:
        c = self.config
        out: dict[int, Group] = {}
        entries = self._search(c.group_base, c.group_filter, c.gid_attr, sorted(set(gids)),
                               [c.gid_attr, c.name_attr, c.pi_attr])  # fmt: skip
        for e in entries:
            values = e.entry_attributes_as_dict
            try:
                gid = int(values[c.gid_attr][0])
                name = str(values[c.name_attr][0])
            except (KeyError, IndexError, ValueError):
                continue  # an entry without a number or a name names nothing
            pi_dns = values.get(c.pi_attr) or []
            out[gid] = Group(name, self._pi(str(pi_dns[0])) if pi_dns else NO_PI)
        return out

    def _pi(self, dn: str) -> str:
        """The PI's name: ``pi_name_attr`` of the entry at ``dn`` (cached)."""
        if dn not in self._pis:
            conn = self._connection()
            name = NO_PI
            try:
                if conn.search(dn, "(objectClass=*)", search_scope=ldap3.BASE,
                               attributes=[self.config.pi_name_attr]):  # fmt: skip
                    values = conn.entries[0].entry_attributes_as_dict.get(self.config.pi_name_attr)
                    name = str(values[0]) if values else NO_PI
            except LDAPException:
                name = NO_PI  # a PI entry that went away leaves the PI unknown
            self._pis[dn] = name
        return self._pis[dn]

    def users(self, uids: Iterable[int]) -> dict[int, str]:
        c = self.config
        out: dict[int, str] = {}
        entries = self._search(c.user_base, c.user_filter, c.uid_attr, sorted(set(uids)),
                               [c.uid_attr, c.user_name_attr])  # fmt: skip
        for e in entries:
            values = e.entry_attributes_as_dict
            try:
                out[int(values[c.uid_attr][0])] = str(values[c.user_name_attr][0])
            except (KeyError, IndexError, ValueError):
                continue
        return out


def _drop(conn: ldap3.Connection) -> None:
    """Close a connection whatever state it is in (a dead server cannot take an unbind)."""
    with contextlib.suppress(LDAPException, OSError):
        conn.unbind()
    sock = getattr(conn, "socket", None)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.close()
