"""Group names, PIs and user names from a real OpenLDAP server (slapd) the test starts
(stages.wrstat.ldap), and the fallback when it cannot be reached."""

from __future__ import annotations

import grp
from collections.abc import Iterator
from pathlib import Path

import pytest

from stages.wrstat.identities import Group, IdentitiesUnavailable, Resolver
from stages.wrstat.ldap import LdapConfig, LdapIdentities
from tests.brokers import HOST, free_port
from tests.directories import ADMIN, ADMIN_PASSWORD, SUFFIX, Slapd

GROUPS = f"ou=group,{SUFFIX}"
PEOPLE = f"ou=people,{SUFFIX}"


@pytest.fixture
def slapd(tmp_path: Path) -> Iterator[Slapd]:
    with Slapd(tmp_path / "ldap") as server:
        yield server


def test_groups_with_their_pis_and_users_come_from_the_directory(slapd: Slapd) -> None:
    ids = LdapIdentities(LdapConfig(slapd.url, GROUPS, PEOPLE))
    try:
        assert ids.groups([1313, 1314, 999]) == {1313: Group("hgi", "Smith"), 1314: Group("team")}
        assert ids.users([7001, 7002, 999]) == {7001: "asmith", 7002: "jdoe"}
    finally:
        ids.close()


def test_many_ids_are_asked_in_chunks(slapd: Slapd) -> None:
    ids = LdapIdentities(LdapConfig(slapd.url, GROUPS, PEOPLE))
    try:
        found = ids.groups([*range(10_000, 10_450), 1313])  # more than one chunk of filters
        assert found == {1313: Group("hgi", "Smith")}
    finally:
        ids.close()


def test_the_bind_dn_and_password_come_from_the_environment(
    slapd: Slapd, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = tmp_path / "password"
    secret.write_text(ADMIN_PASSWORD + "\n")
    monkeypatch.setenv("LDAP_URL", slapd.url)
    monkeypatch.setenv("LDAP_BIND_DN", ADMIN)
    monkeypatch.setenv("LDAP_PASSWORD_FILE", str(secret))
    ids = LdapIdentities(LdapConfig.from_env(GROUPS, PEOPLE))
    try:
        assert ids.users([7002]) == {7002: "jdoe"}
    finally:
        ids.close()
    monkeypatch.delenv("LDAP_PASSWORD_FILE")
    monkeypatch.setenv("LDAP_PASSWORD", "wrong")
    bad = LdapIdentities(LdapConfig.from_env(GROUPS, PEOPLE))
    with pytest.raises(IdentitiesUnavailable, match="refused the bind as cn=admin"):
        bad.users([7002])
    monkeypatch.delenv("LDAP_URL")
    with pytest.raises(IdentitiesUnavailable, match="need LDAP_URL in the environment"):
        LdapConfig.from_env(GROUPS, PEOPLE)


def test_an_unreachable_directory_falls_back_to_the_system_with_a_warning() -> None:
    url = f"ldap://{HOST}:{free_port()}"  # nothing listens there
    r = Resolver(LdapIdentities(LdapConfig(url, GROUPS, PEOPLE, timeout=2)))
    groups, _ = r.lookup([0], [])
    assert groups == {0: Group(grp.getgrgid(0).gr_name)}
    assert len(r.warnings) == 1
    assert f"LDAP {url} cannot be reached" in r.warnings[0]
    assert "names come from the system databases instead" in r.warnings[0]


def test_a_directory_that_stops_mid_run_falls_back_too(slapd: Slapd) -> None:
    ids = LdapIdentities(LdapConfig(slapd.url, GROUPS, PEOPLE, timeout=2))
    r = Resolver(ids)
    assert r.lookup([1313], [])[0] == {1313: Group("hgi", "Smith")}
    slapd.stop()
    groups, _ = r.lookup([1314], [])
    assert groups == {1314: Group("1314")}  # nobody knows it now: named by its number
    assert r.warnings and "names come from the system databases instead" in r.warnings[0]
    ids.close()


@pytest.fixture
def tls_slapd(tmp_path: Path) -> Iterator[Slapd]:
    with Slapd(tmp_path / "ldap", tls=True) as server:
        yield server


def test_ldaps_and_starttls_work_with_the_sites_ca(tls_slapd: Slapd) -> None:
    assert tls_slapd.ldaps_url is not None
    for url, start_tls in ((tls_slapd.ldaps_url, False), (tls_slapd.url, True)):
        config = LdapConfig(url, GROUPS, PEOPLE, start_tls=start_tls, ca_file=str(tls_slapd.ca))
        ids = LdapIdentities(config)
        try:
            assert ids.groups([1313]) == {1313: Group("hgi", "Smith")}, url
        finally:
            ids.close()


def test_a_certificate_nobody_vouches_for_is_refused(tls_slapd: Slapd) -> None:
    assert tls_slapd.ldaps_url is not None
    for url, start_tls in ((tls_slapd.ldaps_url, False), (tls_slapd.url, True)):
        ids = LdapIdentities(LdapConfig(url, GROUPS, PEOPLE, start_tls=start_tls))
        with pytest.raises(IdentitiesUnavailable, match=r"cannot be reached.*certificate"):
            ids.groups([1313])  # the system's CAs never signed the test's certificate
        ids.close()
