"""Group quotas (stages.wrstat.quota). ``lfs`` exists only on Lustre clients; the command is
a template, so these tests give it a small script that prints what ``lfs quota -gq`` prints."""

from __future__ import annotations

import stat
import time
from pathlib import Path

import pytest

from stages.wrstat.quota import CsvQuota, LfsQuota, QuotaError, Quotas

LFS_LIKE = """#!/bin/sh
# prints what 'lfs quota -gq GROUP MOUNT' prints, for a few groups
case "$1" in
  hgi)  echo "$2 1048576 0 2147483648 - 1200 0 0 -" ;;
  full) echo "$2 3000000* 0 2000000 - 10 0 0 -" ;;
  odd)  echo "nothing useful" ;;
  slow) sleep 5 ;;
  *)    echo "lfs quota: cannot find group '$1'" >&2; exit 2 ;;
esac
"""


@pytest.fixture
def lfs(tmp_path: Path) -> str:
    script = tmp_path / "lfs-like"
    script.write_text(LFS_LIKE)
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return f"{script} {{group}} {{mount}}"


def test_the_hard_limit_in_kib_becomes_bytes(lfs: str) -> None:
    q = LfsQuota(lfs)
    assert q.limit("scratch117", "/lustre/scratch117", "hgi", 1313) == 2147483648 * 1024
    assert q.limit("scratch117", "/lustre/scratch117", "full", 1) == 2000000 * 1024


@pytest.mark.parametrize(
    ("group", "words"),
    [
        ("nobody", "exited 2: lfs quota: cannot find group 'nobody'"),
        ("odd", "printed 'nothing useful', not 'filesystem used soft hard ...'"),
        ("slow", "took more than 0.5s"),
    ],
)
def test_a_failing_command_says_why(lfs: str, group: str, words: str) -> None:
    with pytest.raises(QuotaError) as err:
        LfsQuota(lfs, timeout=0.5).limit("v", "/m", group, 1)
    assert words in str(err.value)


def test_a_hung_file_system_is_waited_for_once_not_once_per_group(lfs: str) -> None:
    q = LfsQuota(lfs, timeout=0.5)
    with pytest.raises(QuotaError, match=r"took more than 0\.5s"):
        q.limit("v", "/m", "slow", 1)
    t0 = time.monotonic()
    with pytest.raises(QuotaError, match="not asked again this run"):
        q.limit("v", "/m", "hgi", 1313)  # would answer, but the command is given up on
    assert time.monotonic() - t0 < 0.1


def test_a_missing_command_says_it_is_not_installed() -> None:
    with pytest.raises(QuotaError, match="no-such-lfs is not installed here"):
        LfsQuota("no-such-lfs quota -gq {group} {mount}").limit("v", "/m", "g", 1)


def test_a_csv_file_by_group_name_or_gid_and_volume(tmp_path: Path) -> None:
    f = tmp_path / "quotas.csv"
    f.write_text("group,limit,volume\nhgi,100,\n1314,200,\nhgi,300,scratch118\n")
    q = CsvQuota(f)
    assert q.limit("scratch117", "/m", "hgi", 1313) == 100 * 1024
    assert q.limit("scratch118", "/m", "hgi", 1313) == 300 * 1024  # the volume's own row
    assert q.limit("scratch117", "/m", "team", 1314) == 200 * 1024  # by gid
    with pytest.raises(QuotaError, match="has no row for group other"):
        q.limit("scratch117", "/m", "other", 9)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("name,size\nhgi,1\n", "the header must name 'group' and 'limit'"),
        ("group,limit\nhgi,lots\n", ":2: the limit must be a whole number of KiB, got 'lots'"),
    ],
)
def test_a_bad_csv_file_says_where(tmp_path: Path, text: str, words: str) -> None:
    f = tmp_path / "quotas.csv"
    f.write_text(text)
    with pytest.raises(QuotaError) as err:
        CsvQuota(f)
    assert words in str(err.value)


def test_sources_are_asked_in_turn_and_what_nobody_knows_is_reported(
    lfs: str, tmp_path: Path
) -> None:
    f = tmp_path / "quotas.csv"
    f.write_text("group,limit\nteam,50\n")
    q = Quotas([LfsQuota(lfs), CsvQuota(f)])
    assert q.limit("s1", "/m", "hgi", 1313) == 2147483648 * 1024  # from lfs
    assert q.limit("s1", "/m", "team", 1314) == 50 * 1024  # lfs does not know it: the file
    assert q.limit("s1", "/m", "ghost", 1315) is None
    assert q.limit("s1", "/m", "ghost", 1315) is None  # asked once
    assert len(q.unknown) == 1
    volume, group, why = q.unknown[0]
    assert (volume, group) == ("s1", "ghost")
    assert "cannot find group 'ghost'" in why and "has no row for group ghost" in why
