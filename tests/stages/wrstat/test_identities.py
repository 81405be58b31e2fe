"""Group and user names and PIs (stages.wrstat.identities)."""

from __future__ import annotations

import grp
import os
import pwd
from pathlib import Path

import pytest

from stages.wrstat.identities import (
    NO_PI,
    FileIdentities,
    Group,
    IdentityFileError,
    Resolver,
    SystemIdentities,
)

UNKNOWN = 3_999_999_999  # a gid and uid no system here has


def test_the_system_databases_name_what_they_know() -> None:
    root_group = grp.getgrgid(0).gr_name
    me = pwd.getpwuid(os.getuid()).pw_name
    s = SystemIdentities()
    assert s.groups([0, UNKNOWN]) == {0: Group(root_group, NO_PI)}
    assert s.users([os.getuid(), UNKNOWN]) == {os.getuid(): me}


def test_a_mapping_file_names_groups_with_pis_and_users(tmp_path: Path) -> None:
    f = tmp_path / "ids.tsv"
    f.write_text(
        "# kind\tid\tname\tPI\ngroup\t1313\thgi\tSmith\ngroup\t1314\tteam\n\nuser\t5678\tjdoe\n"
    )
    ids = FileIdentities(f)
    assert ids.groups([1313, 1314, 1]) == {1313: Group("hgi", "Smith"), 1314: Group("team")}
    assert ids.users([5678, 5679]) == {5678: "jdoe"}


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ("grup\t1\tx", "expected 'group<TAB>gid<TAB>name[<TAB>PI]'"),
        ("group\tten\tx", "the group id must be a number, got 'ten'"),
        ("user\t5\t ", "the user 5 has no name"),
        ("group 1 x", "expected"),
    ],
)
def test_a_bad_mapping_line_says_where_and_what(tmp_path: Path, line: str, words: str) -> None:
    f = tmp_path / "ids.tsv"
    f.write_text(f"group\t1\tok\n{line}\n")
    with pytest.raises(IdentityFileError) as err:
        FileIdentities(f)
    assert str(err.value).startswith(f"{f}:2: ") and words in str(err.value)


def test_a_missing_mapping_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(IdentityFileError, match="cannot read the identity mapping file"):
        FileIdentities(tmp_path / "nowhere.tsv")


def test_the_resolver_falls_back_to_the_system_then_to_numbers(tmp_path: Path) -> None:
    f = tmp_path / "ids.tsv"
    f.write_text("group\t1313\thgi\tSmith\nuser\t5678\tjdoe\n")
    r = Resolver(FileIdentities(f))
    groups, users = r.lookup([1313, 0, UNKNOWN, 1313], [5678, os.getuid(), UNKNOWN])
    assert groups == {
        1313: Group("hgi", "Smith"),
        0: Group(grp.getgrgid(0).gr_name),
        UNKNOWN: Group(str(UNKNOWN)),
    }
    assert users == {5678: "jdoe", os.getuid(): pwd.getpwuid(os.getuid()).pw_name,
                     UNKNOWN: str(UNKNOWN)}  # fmt: skip
    assert r.misses == 4  # 0 and UNKNOWN, twice: the file did not know them
