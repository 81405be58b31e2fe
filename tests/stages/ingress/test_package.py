"""Tarballs: members and their order, manifest, status rows, determinism, names, placement
and the size bound."""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest

from stages.ingress.package import (
    Built,
    Collection,
    PackageError,
    Packer,
    build,
    csv_collections,
    tarball_path,
)

UNTIL = dt.datetime(2026, 11, 1, 12, 30, 5, tzinfo=dt.UTC)
SINCE = UNTIL - dt.timedelta(days=1)
STARTED = UNTIL + dt.timedelta(seconds=3)
STAMP = "2026-11-01-123005+0000"


def coll(key: str, status: str = "ok", **fields: Any) -> Collection:
    base: dict[str, Any] = {"key": key, "version": "1.1", "format": "json", "since": SINCE,
                            "until": UNTIL, "started": STARTED, "elapsed": 2.4,
                            "status": status}  # fmt: skip
    return Collection(**{**base, **fields})


def csv_coll(key: str, path: Path, **fields: Any) -> Collection:
    return coll(key, format="csv", files=[path], **fields)


CONFIG = coll("config", version="1.0", data={"product": "zpipeline", "host": "h"})
CONFIG_SIZE = len(b'{"host":"h","product":"zpipeline"}')


def packer(tmp_path: Path, max_data_size: int = 1000, name_base: str = "res") -> Packer:
    return Packer(max_data_size, tmp_path / "out", name_base, UNTIL, CONFIG)


def members(path: Path) -> dict[str, bytes]:
    """Member name -> content, in the tarball's order."""
    found = {}
    with tarfile.open(path, "r:gz") as tar:
        for info in tar:
            f = tar.extractfile(info)
            assert f is not None
            found[info.name] = f.read()
    return found


def status_rows(path: Path) -> list[dict[str, str]]:
    text = members(path)["./data_collection_status.csv"].decode("utf-8")
    return list(csv.DictReader(io.StringIO(text)))


def keys_of(b: Built) -> list[str]:
    return [c.key for c in b.collections]


def write_csv(path: Path, rows: int, width: int = 20) -> bytes:
    lines = ["id,value\n"] + [f"{i},{'v' * (width + i % 7)}\n" for i in range(rows)]
    data = "".join(lines).encode("utf-8")
    path.write_bytes(data)
    return data


# --- layout ---------------------------------------------------------------------------


def test_members_their_order_names_and_attributes(tmp_path: Path) -> None:
    table = tmp_path / "events.csv"
    write_csv(table, 3)
    p = packer(tmp_path)
    p.add(coll("b_first", data={"z": 1, "a": [1, 2]}))
    p.add(csv_coll("events", table))
    p.add(coll("a_second", data=[1]))
    (built,) = p.finish()
    with tarfile.open(built.path, "r:gz") as tar:
        infos = tar.getmembers()
    assert [i.name for i in infos] == [
        "./b_first.json", "./events.csv", "./a_second.json",
        "./config.json", "./data_collection_status.csv", "./manifest.json",
    ]  # fmt: skip
    for i in infos:
        assert i.isreg() and i.mode == 0o644 and (i.uid, i.gid, i.uname, i.gname) == (0, 0, "", "")
        assert i.mtime == int(UNTIL.timestamp())
    found = members(built.path)
    assert found["./b_first.json"] == b'{"a":[1,2],"z":1}'  # keys sorted
    assert found["./events.csv"] == table.read_bytes()
    assert json.loads(found["./config.json"]) == CONFIG.data


def test_the_manifest_lists_every_other_member_with_its_version(tmp_path: Path) -> None:
    p = packer(tmp_path)
    p.add(coll("json1", data={"x": 1}))
    p.add(coll("json2", version="3.0", data=[]))
    p.add(coll("broken", "failed", error="boom"))
    (built,) = p.finish()
    manifest = json.loads(members(built.path)["./manifest.json"])
    assert manifest == {"config.json": "1.0", "data_collection_status.csv": "1.0",
                        "json1.json": "1.1", "json2.json": "3.0"}  # fmt: skip
    assert list(manifest) == sorted(manifest)


def test_status_rows_report_ok_failed_and_empty_collections(tmp_path: Path) -> None:
    p = packer(tmp_path)
    p.add(coll("good", data={"x": 1}, elapsed=2.6))
    p.add(coll("bad", "failed", error="OSError: disk on fire", elapsed=0.2))
    p.add(coll("none", "empty", format="csv"))
    (built,) = p.finish()
    rows = status_rows(built.path)
    assert list(rows[0]) == ["collection_start_timestamp", "since", "until", "file_name",
                             "status", "elapsed"]  # fmt: skip
    assert [(r["file_name"], r["status"], r["elapsed"]) for r in rows] == [
        ("good.json", "ok", "3"), ("bad.json", "failed", "0"), ("none.csv", "empty", "2"),
    ]  # fmt: skip
    assert rows[0]["since"] == "2026-10-31T12:30:05+00:00"
    assert rows[0]["until"] == "2026-11-01T12:30:05+00:00"
    assert rows[0]["collection_start_timestamp"] == "2026-11-01T12:30:08+00:00"
    # a failed or empty collection has no member, but is in the tarball's record, reason kept
    assert "./bad.json" not in members(built.path) and "./none.csv" not in members(built.path)
    assert [(c.key, c.status, c.error) for c in built.collections] == [
        ("good", "ok", None), ("bad", "failed", "OSError: disk on fire"), ("none", "empty", None)
    ]  # fmt: skip


def test_times_in_other_zones_are_written_in_utc(tmp_path: Path) -> None:
    paris = dt.timezone(dt.timedelta(hours=1))
    p = Packer(1000, tmp_path, "res", UNTIL.astimezone(paris), CONFIG)
    p.add(coll("k", data=1, since=SINCE.astimezone(paris)))
    (built,) = p.finish()
    assert built.path.name == f"res-{STAMP}-0.tar.gz"
    assert status_rows(built.path)[0]["since"] == "2026-10-31T12:30:05+00:00"


def test_data_that_is_not_json_makes_the_collection_failed_with_the_reason(
    tmp_path: Path,
) -> None:
    p = packer(tmp_path)
    odd = coll("odd", data={"when": dt.date(2026, 1, 2), "what": object()})
    p.add(odd)
    (built,) = p.finish()
    assert odd.status == "failed" and "not JSON serialisable" in (odd.error or "")
    assert status_rows(built.path)[0]["status"] == "failed"
    assert "./odd.json" not in members(built.path)


def test_building_twice_gives_the_same_bytes(tmp_path: Path) -> None:
    table = tmp_path / "events.csv"
    write_csv(table, 50)
    shas = []
    for folder in ("one", "two", "two"):
        p = Packer(10_000, tmp_path / folder, "res", UNTIL, CONFIG)
        p.add(coll("k", data={"b": [1, 2], "a": "é"}))
        p.add(csv_coll("events", table))
        (built,) = p.finish()
        assert built.sha256 == hashlib.sha256(built.path.read_bytes()).hexdigest()
        shas.append(built.sha256)
    assert shas[0] == shas[1] == shas[2]
    raw = built.path.read_bytes()
    assert raw[3] & 0x08 == 0  # no file name in the gzip header
    assert raw[4:8] == b"\0\0\0\0"  # and no time


def test_built_reports_its_sizes(tmp_path: Path) -> None:
    p = packer(tmp_path)
    p.add(coll("k", data={"x": "y" * 100}))
    (built,) = p.finish()
    assert built.size == built.path.stat().st_size
    assert built.unpacked == sum(len(v) for v in members(built.path).values())
    with gzip.open(built.path) as f:
        assert len(f.read()) > built.unpacked  # tar headers and padding are not counted


# --- names ----------------------------------------------------------------------------


def test_names_carry_base_until_and_an_index_counting_up(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "res-2026-01-01-000000+0000-0.tar.gz").touch()  # another until: not counted
    (out / "other-2026-11-01-123005+0000-0.tar.gz").touch()  # another base: not counted
    p = packer(tmp_path, name_base="res")
    for k in ("a", "a", "a"):
        p.add(coll(k, data=1))
    names = [b.path.name for b in p.finish()]
    assert names == [f"res-{STAMP}-0.tar.gz", f"res-{STAMP}-1.tar.gz", f"res-{STAMP}-2.tar.gz"]
    assert not [f for f in out.iterdir() if f.name.startswith(".")]  # no temporary left


def test_an_index_is_never_taken_twice_after_a_tarball_is_removed(tmp_path: Path) -> None:
    (tmp_path / f"res-{STAMP}-0.tar.gz").touch()
    (tmp_path / f"res-{STAMP}-1.tar.gz").touch()
    (tmp_path / f"res-{STAMP}-0.tar.gz").unlink()
    assert tarball_path(tmp_path, UNTIL, "res").name == f"res-{STAMP}-2.tar.gz"
    assert tarball_path(tmp_path, UNTIL, "r[e]s").name == f"r[e]s-{STAMP}-0.tar.gz"


def test_build_names_the_tarball_and_returns_its_path(tmp_path: Path) -> None:
    first = build(tmp_path, [coll("a", data=1)], CONFIG, UNTIL)
    second = build(tmp_path, [coll("a", data=1)], CONFIG, UNTIL)
    assert (first.name, second.name) == (
        f"pipeline-results-{STAMP}-0.tar.gz", f"pipeline-results-{STAMP}-1.tar.gz")  # fmt: skip
    assert first.read_bytes() == second.read_bytes()


# --- placement ------------------------------------------------------------------------


def test_two_keys_share_a_package(tmp_path: Path) -> None:
    p = packer(tmp_path)
    assert p.add(coll("a", data=1)) == [] and p.add(coll("b", data=2)) == []
    assert [keys_of(b) for b in p.finish()] == [["a", "b"]]


def test_the_same_key_twice_goes_into_two_packages(tmp_path: Path) -> None:
    p = packer(tmp_path)
    for k in ("a", "b", "a", "c"):
        p.add(coll(k, data=1))
    assert [keys_of(b) for b in p.finish()] == [["a", "b", "c"], ["a"]]


def test_shipping_groups_are_never_mixed(tmp_path: Path) -> None:
    p = packer(tmp_path)
    p.add(coll("a", data=1))
    p.add(coll("b", data=1, shipping_group="other"))
    p.add(coll("c", data=1))
    built = p.finish()
    assert [keys_of(b) for b in built] == [["a", "c"], ["b"]]
    assert {c.shipping_group for c in built[1].collections} == {"other"}


def test_a_collection_goes_to_the_first_package_with_room(tmp_path: Path) -> None:
    p = packer(tmp_path, max_data_size=CONFIG_SIZE + 100)
    fifty = "x" * 48  # 50 bytes as JSON
    p.add(coll("a", data=fifty + "x" * 30))  # 80: package 0 is nearly full
    p.add(coll("b", data=fifty))  # no room in 0: package 1
    p.add(coll("c", data="x" * 18))  # 20 bytes: fits in 0
    p.add(coll("d", data=fifty))  # fits in 1
    assert [keys_of(b) for b in p.finish()] == [["a", "c"], ["b", "d"]]


def test_a_sliced_collection_is_built_at_once_into_its_own_tarball(tmp_path: Path) -> None:
    p = packer(tmp_path)
    p.add(coll("a", data=1))
    (now,) = p.add(coll("s", data=[1], sliced=True))
    assert now.path.exists() and keys_of(now) == ["s"]
    assert list(members(now.path)) == [
        "./s.json", "./config.json", "./data_collection_status.csv", "./manifest.json"]  # fmt: skip
    (failed,) = p.add(coll("s", "failed", sliced=True, error="boom"))  # reported too
    assert [r["status"] for r in status_rows(failed.path)] == ["failed"]
    (rest,) = p.finish()
    assert keys_of(rest) == ["a"]
    assert [now.path.name[-9:], failed.path.name[-9:], rest.path.name[-9:]] == [
        "-0.tar.gz", "-1.tar.gz", "-2.tar.gz"]  # fmt: skip


def test_a_collection_larger_than_the_bound_goes_alone(tmp_path: Path) -> None:
    p = packer(tmp_path, max_data_size=CONFIG_SIZE + 100)
    p.add(coll("small", data=1))
    p.add(coll("huge", data="x" * 500))
    p.add(coll("other", data=2))
    built = p.finish()
    assert [keys_of(b) for b in built] == [["small", "other"], ["huge"]]


def test_nothing_added_builds_nothing(tmp_path: Path) -> None:
    assert packer(tmp_path).finish() == []


# --- the size bound and CSV parts -----------------------------------------------------


def data_size(path: Path) -> int:
    """The bytes of a tarball's members that count against the bound."""
    found = members(path)
    return sum(len(v) for k, v in found.items() if k not in (
        "./data_collection_status.csv", "./manifest.json"))  # fmt: skip


def test_a_csv_ten_times_the_bound_is_cut_into_parts_each_in_its_own_tarball(
    tmp_path: Path,
) -> None:
    limit = 2000
    table = tmp_path / "events.csv"
    original = write_csv(table, 720)
    assert 9 * limit < len(original) < 12 * limit
    p = packer(tmp_path, max_data_size=limit)
    parts = csv_collections(csv_coll("events", table), p.max_collection_size)
    assert len(parts) >= 10 and all(len(c.files) == 1 for c in parts)
    for c in parts:
        assert p.add(c) == []
    built = p.finish()
    assert len(built) == len(parts)
    header = b"id,value\n"
    rows = b""
    for b in built:
        assert keys_of(b) == ["events"]
        assert data_size(b.path) <= limit
        csv_bytes = members(b.path)["./events.csv"]
        assert csv_bytes.startswith(header)
        rows += csv_bytes[len(header) :]
    assert header + rows == original
    assert table.read_bytes() == original  # the collector's file is left in place


def test_add_cuts_a_csv_that_does_not_fit_beside_the_config(tmp_path: Path) -> None:
    limit = 1000
    table = tmp_path / "events.csv"
    original = write_csv(table, 100)
    p = packer(tmp_path, max_data_size=limit)
    assert p.add(csv_coll("events", table)) == []
    built = p.finish()
    assert len(built) == 3  # 2.7 kB of rows, about 950 bytes a part beside the config
    assert all(data_size(b.path) <= limit for b in built)
    joined = b"".join(members(b.path)["./events.csv"][len(b"id,value\n") :] for b in built)
    assert b"id,value\n" + joined == original


def test_sliced_csv_parts_are_each_built_at_once(tmp_path: Path) -> None:
    table = tmp_path / "events.csv"
    write_csv(table, 100)
    p = packer(tmp_path, max_data_size=1000)
    now = p.add(csv_coll("events", table, sliced=True))
    assert len(now) == 3 and all(b.path.exists() for b in now)
    assert all(data_size(b.path) <= 1000 for b in now)
    assert p.finish() == []


def test_a_csv_row_too_large_for_the_bound_goes_alone(tmp_path: Path) -> None:
    table = tmp_path / "wide.csv"
    table.write_text("h\n1\n" + "2" * 3000 + "\n3\n")
    p = packer(tmp_path, max_data_size=1000)
    p.add(csv_coll("wide", table))
    built = p.finish()
    assert [members(b.path)["./wide.csv"] for b in built] == [
        b"h\n1\n", b"h\n" + b"2" * 3000 + b"\n", b"h\n3\n"]  # fmt: skip


def test_csv_collections_leaves_other_collections_as_they_are(tmp_path: Path) -> None:
    j = coll("j", data=1)
    e = coll("e", "empty", format="csv")
    small = tmp_path / "small.csv"
    write_csv(small, 2)
    s = csv_coll("s", small)
    assert csv_collections(j, 10) == [j] and csv_collections(e, 10) == [e]
    assert csv_collections(s, 10_000) == [s]


# --- refusals -------------------------------------------------------------------------


def test_a_failed_config_is_refused_with_its_reason(tmp_path: Path) -> None:
    bad = coll("config", "failed", error="KeyError: 'host'")
    with pytest.raises(PackageError, match=r"status 'failed' \(KeyError: 'host'\)"):
        Packer(1000, tmp_path, "res", UNTIL, bad)


def test_a_config_larger_than_the_bound_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PackageError, match=r"config\.json alone is"):
        Packer(CONFIG_SIZE, tmp_path, "res", UNTIL, CONFIG)


def test_naive_times_are_refused(tmp_path: Path) -> None:
    p = packer(tmp_path)
    with pytest.raises(PackageError, match=r"collection 'k': since .* has no time zone"):
        p.add(coll("k", data=1, since=SINCE.replace(tzinfo=None)))
    with pytest.raises(PackageError, match="no time zone"):
        Packer(1000, tmp_path, "res", UNTIL.replace(tzinfo=None), CONFIG)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"key": "../etc"}, "cannot name a tarball member"),
        ({"key": "manifest"}, "cannot name a tarball member"),
        ({"format": "xml"}, "format 'xml'"),
        ({"status": "done"}, "status 'done'"),
        ({"format": "csv"}, "status 'ok' but no file"),
        ({"key": "config"}, "given to Packer"),
    ],
)
def test_collections_that_cannot_be_packed_are_refused(
    tmp_path: Path, fields: dict[str, Any], message: str
) -> None:
    fields = {"key": "k", **fields}
    with pytest.raises(PackageError, match=message):
        packer(tmp_path).add(coll(**fields))


def test_a_missing_csv_file_is_named(tmp_path: Path) -> None:
    gone = tmp_path / "gone.csv"
    with pytest.raises(PackageError, match=r"collection 'k': cannot read its file .*gone\.csv"):
        packer(tmp_path).add(csv_coll("k", gone))


def test_adding_after_finish_is_refused(tmp_path: Path) -> None:
    p = packer(tmp_path)
    p.finish()
    with pytest.raises(PackageError, match="after finish"):
        p.add(coll("k", data=1))
