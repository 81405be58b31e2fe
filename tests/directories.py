"""An OpenLDAP server (slapd) of the test's own: configured and seeded in a temporary folder
from the installed binaries, listening on a free 127.0.0.1 port, stopped at the end."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

from tests.brokers import HOST, free_port
from tests.servers import ServerProcess, binary

SUFFIX = "dc=example,dc=org"
ADMIN = f"cn=admin,{SUFFIX}"
ADMIN_PASSWORD = "admin-secret"

#: groups with a PI (a person's DN in 'owner', as lurge's directory held one), and users
SEED = f"""
dn: {SUFFIX}
objectClass: dcObject
objectClass: organization
o: Example
dc: example

dn: ou=group,{SUFFIX}
objectClass: organizationalUnit
ou: group

dn: ou=people,{SUFFIX}
objectClass: organizationalUnit
ou: people

dn: uid=asmith,ou=people,{SUFFIX}
objectClass: inetOrgPerson
objectClass: posixAccount
uid: asmith
cn: Alice Smith
sn: Smith
uidNumber: 7001
gidNumber: 1313
homeDirectory: /home/asmith

dn: uid=jdoe,ou=people,{SUFFIX}
objectClass: inetOrgPerson
objectClass: posixAccount
uid: jdoe
cn: John Doe
sn: Doe
uidNumber: 7002
gidNumber: 1313
homeDirectory: /home/jdoe

dn: cn=hgi,ou=group,{SUFFIX}
objectClass: posixGroup
objectClass: extensibleObject
cn: hgi
gidNumber: 1313
owner: uid=asmith,ou=people,{SUFFIX}

dn: cn=team,ou=group,{SUFFIX}
objectClass: posixGroup
cn: team
gidNumber: 1314
"""


class Slapd(ServerProcess):
    """``ldap://127.0.0.1:port`` with ``SEED`` (and the LDIF entries ``extra``) loaded;
    anonymous reads, ``ADMIN`` binds. With ``tls``, a certificate for 127.0.0.1 signed by a
    CA of the test's own (``ca``, a PEM file): StartTLS on ``url``, and ``ldaps_url``."""

    def __init__(self, folder: Path, extra: str = "", tls: bool = False) -> None:
        self.folder = folder
        (folder / "db").mkdir(parents=True)
        self.port = free_port()
        self.url = f"ldap://{HOST}:{self.port}"
        self.ldaps_url = f"ldaps://{HOST}:{free_port()}" if tls else None
        self.ca = folder / "ca.pem"
        self.conf = folder / "slapd.conf"
        self.conf.write_text(self._tls() if tls else "")
        with self.conf.open("a") as conf:
            conf.write(
                "include /etc/ldap/schema/core.schema\n"
                "include /etc/ldap/schema/cosine.schema\n"
                "include /etc/ldap/schema/nis.schema\n"
                "include /etc/ldap/schema/inetorgperson.schema\n"
                "modulepath /usr/lib/ldap\nmoduleload back_mdb\n"
                f"pidfile {folder / 'slapd.pid'}\n"
                "database mdb\nmaxsize 10485760\n"
                f'suffix "{SUFFIX}"\nrootdn "{ADMIN}"\nrootpw {ADMIN_PASSWORD}\n'
                f"directory {folder / 'db'}\n"
            )
        seed = folder / "seed.ldif"
        seed.write_text(SEED.lstrip() + extra)
        subprocess.run([binary("slapadd", "slapd"), "-f", str(self.conf), "-l", str(seed)],
                       check=True, capture_output=True)  # fmt: skip
        self.proc: subprocess.Popen[bytes] | None = None

    def _tls(self) -> str:
        """A CA and a server certificate it signs, made with openssl; slapd's TLS lines."""
        f = self.folder
        openssl = binary("openssl", "openssl")

        def run(*args: str) -> None:
            subprocess.run([openssl, *args], check=True, capture_output=True)

        run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test CA",
            "-keyout", str(f / "ca.key"), "-out", str(self.ca))  # fmt: skip
        run("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={HOST}",
            "-keyout", str(f / "server.key"), "-out", str(f / "server.csr"))  # fmt: skip
        (f / "san.ext").write_text(f"subjectAltName=IP:{HOST}\n")
        run("x509", "-req", "-in", str(f / "server.csr"), "-CA", str(self.ca), "-CAkey",
            str(f / "ca.key"), "-CAcreateserial", "-days", "2", "-extfile", str(f / "san.ext"),
            "-out", str(f / "server.pem"))  # fmt: skip
        return (f"TLSCACertificateFile {self.ca}\nTLSCertificateFile {f / 'server.pem'}\n"
                f"TLSCertificateKeyFile {f / 'server.key'}\n")  # fmt: skip

    def start(self) -> None:
        urls = " ".join(f"{u}/" for u in (self.url, self.ldaps_url) if u)
        self.proc = subprocess.Popen(
            [binary("slapd", "slapd"), "-f", str(self.conf), "-h", urls, "-d", "0"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection((HOST, self.port), timeout=0.5).close()
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    err = (
                        self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                    )
                    raise RuntimeError(f"slapd did not start: {err[-2000:]}") from None
                time.sleep(0.05)
