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
    anonymous reads, ``ADMIN`` binds."""

    def __init__(self, folder: Path, extra: str = "") -> None:
        self.folder = folder
        (folder / "db").mkdir(parents=True)
        self.port = free_port()
        self.url = f"ldap://{HOST}:{self.port}"
        self.conf = folder / "slapd.conf"
        self.conf.write_text(
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

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [binary("slapd", "slapd"), "-f", str(self.conf), "-h", f"{self.url}/", "-d", "0"],
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
