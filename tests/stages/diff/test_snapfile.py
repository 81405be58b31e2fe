from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path
from typing import Any

import msgpack  # type: ignore[import-untyped]
import numpy as np
import pytest

from pipeline import Columns
from stages.diff.snapfile import (
    META,
    REPORT,
    SNAPSHOT,
    TABLE,
    Section,
    SnapFileError,
    decode,
    encode,
    read,
    write,
)


def _objects(*values: object) -> np.ndarray[Any, Any]:
    arr = np.empty(len(values), dtype=object)
    arr[:] = values
    return arr


def sample() -> list[Section]:
    """A META section and tables of every kind of column the format holds."""
    return [
        Section(
            "meta",
            {
                "volume": "lustre1",
                "taken": 1700000000,
                "ratio": 0.25,
                "ok": True,
                "none": None,
                "tags": ["a", 1, [2.5]],
                "nested": {"z": 1, "a": {}},
            },
        ),
        Section(
            "groups",
            Columns(
                gid=np.array([0, -1, 2**63 - 1], dtype=np.int64),
                files=np.array([1, 2, 2**32 - 1], dtype=np.uint32),
                bytes=np.array([0, 2**64 - 1, 7], dtype=np.uint64),
                mean=np.array([0.5, np.inf, -0.0]),
                full=np.array([True, False, True]),
                code=np.array([b"ab", b"", b"xyz"], dtype="S3"),
                owner=_objects("ann", b"\xff\x00raw", None),
            ),
        ),
        Section("empty", Columns(uid=np.array([], dtype=np.int64), name=_objects())),
        Section(
            "users",
            Columns(
                uid=np.array([1, 2, 3, 4, 5], dtype=np.uint32),
                who=np.array(["ça", "b", "", "dd", "e"]),
                seen=np.array(["2024-01-02T03:04:05"] * 4 + ["NaT"], dtype="M8[s]"),
            ),
        ),
    ]


def sample_value(name: str) -> Columns:
    value = next(s.value for s in sample() if s.name == name)
    assert isinstance(value, Columns)
    return value


def container(
    sections: list[tuple[int, str, bytes]], magic: bytes = b"PLSNAP\r\n", version: int = 1
) -> bytes:
    """The documented layout built independently of the module: the test's own reader of
    the module docstring."""
    table_size = sum(1 + 1 + len(n.encode()) + 8 + 8 + 4 for _, n, _ in sections)
    offset = 8 + 2 + 2 + 4 + table_size + 4
    head = magic + struct.pack("<HHI", version, 0, len(sections))
    body = b""
    for type_, name, payload in sections:
        raw = name.encode()
        head += struct.pack("<BB", type_, len(raw)) + raw
        head += struct.pack("<QQI", offset, len(payload), zlib.crc32(payload))
        body += struct.pack("<BQ", type_, len(payload)) + payload
        offset += 9 + len(payload)
    return head + struct.pack("<I", zlib.crc32(head)) + body


def table_payload(header: Any, *blobs: bytes) -> bytes:
    packed: bytes = msgpack.packb(header, use_bin_type=True)
    return struct.pack("<I", len(packed)) + packed + b"".join(blobs)


def refused(data: bytes, kind: str = SNAPSHOT) -> str:
    with pytest.raises(SnapFileError) as info:
        decode(data, kind, source="x.snap")
    message = str(info.value)
    assert message.startswith("x.snap: "), message
    assert f"(at byte {info.value.offset}); " in message, message
    return message


def test_round_trip_keeps_every_section_value_and_dtype() -> None:
    """What is written is what is read: names in order, META values, column dtypes and values."""
    found = decode(encode(SNAPSHOT, sample()), SNAPSHOT)
    assert list(found) == ["meta", "groups", "empty", "users"]
    assert found["meta"] == {
        "volume": "lustre1",
        "taken": 1700000000,
        "ratio": 0.25,
        "ok": True,
        "none": None,
        "tags": ["a", 1, [2.5]],
        "nested": {"a": {}, "z": 1},
    }
    for name in ("groups", "empty", "users"):
        want, got = sample_value(name), found[name]
        assert isinstance(got, Columns) and got.names == want.names and len(got) == len(want)
        for col, arr in want.items():
            assert got[col].dtype == arr.dtype, col
            assert got[col].tolist() == arr.tolist(), col
    groups = found["groups"]
    assert isinstance(groups, Columns)
    assert groups["bytes"][1] == 2**64 - 1 and str(groups["mean"][2]) == "-0.0"
    assert [type(v) for v in groups["owner"]] == [str, bytes, type(None)]
    assert groups["code"].tolist() == [b"ab", b"", b"xyz"]


def test_numeric_columns_are_views_of_the_buffer_they_were_read_from() -> None:
    """Numeric columns are read with no copy: they share the bytes they were decoded from."""
    data = encode(SNAPSHOT, sample())
    groups = decode(data, SNAPSHOT)["groups"]
    assert isinstance(groups, Columns)
    for col in ("gid", "files", "bytes", "mean", "full"):
        assert not groups[col].flags.owndata and not groups[col].flags.writeable, col
        assert np.shares_memory(groups[col], np.frombuffer(data, np.uint8)), col
    mutable = bytearray(data)
    table = decode(memoryview(mutable), SNAPSHOT)["groups"]
    assert isinstance(table, Columns)
    gid = table["gid"]
    at = data.index(np.array([0, -1, 2**63 - 1], dtype="<i8").tobytes())
    mutable[at] = 42
    assert gid[0] == 42


def test_layout_is_the_one_the_docstring_describes() -> None:
    """A file built by hand from the documented layout equals what encode writes."""
    meta = {"b": [1, None], "a": "x"}
    cols = Columns(n=np.array([1, 2, 3], dtype="<u2"), s=_objects("p", None, b"q"))
    n_blob = np.array([1, 2, 3], dtype="<u2").tobytes() + bytes(2)
    s_packed = msgpack.packb(["p", None, b"q"], use_bin_type=True)
    s_blob = s_packed + bytes(-len(s_packed) % 8)
    header = {"rows": 3, "columns": [["n", "<u2", 6], ["s", "|O", len(s_packed)]]}
    by_hand = container(
        [
            (META, "meta", msgpack.packb({"a": "x", "b": [1, None]}, use_bin_type=True)),
            (TABLE, "t", table_payload(header, n_blob, s_blob)),
        ],
        magic=b"PLDIFF\r\n",
    )
    assert encode(REPORT, [Section("meta", meta), Section("t", cols)]) == by_hand
    assert by_hand[:16] == b"PLDIFF\r\n\x01\x00\x00\x00\x02\x00\x00\x00"


def test_a_big_endian_column_is_written_little_endian() -> None:
    """Column bytes are little-endian whatever the array's byte order, as the layout says."""
    data = encode(SNAPSHOT, [Section("t", Columns(x=np.array([1, 258], dtype=">i4")))])
    assert b"<i4" in data and b">i4" not in data
    assert np.array([1, 258], dtype="<i4").tobytes() in data
    table = decode(data, SNAPSHOT)["t"]
    assert isinstance(table, Columns)
    assert table["x"].dtype == np.dtype("<i4") and table["x"].tolist() == [1, 258]


def test_equal_input_gives_the_same_bytes(tmp_path: Path) -> None:
    """Files are byte-for-byte deterministic, whatever order equal META dicts were built in."""
    first = write(tmp_path / "a.snap", SNAPSHOT, sample())
    again = sample()
    assert isinstance(again[0].value, dict)
    again[0] = Section("meta", dict(reversed(again[0].value.items())))
    second = write(tmp_path / "b.snap", SNAPSHOT, again)
    assert first == second == len(encode(SNAPSHOT, sample()))
    assert (tmp_path / "a.snap").read_bytes() == (tmp_path / "b.snap").read_bytes()


def test_write_replaces_the_file_atomically_and_leaves_no_temporary(tmp_path: Path) -> None:
    """write replaces an old file whole, returns its size, and leaves nothing else behind."""
    path = tmp_path / "day.snap"
    write(path, SNAPSHOT, [Section("meta", {"day": 1})])
    size = write(str(path), SNAPSHOT, [Section("meta", {"day": 2})])
    assert size == path.stat().st_size
    assert read(path, SNAPSHOT) == {"meta": {"day": 2}}
    assert os.listdir(tmp_path) == ["day.snap"]
    with pytest.raises(ValueError, match="section 'bad'"):
        write(path, SNAPSHOT, [Section("bad", {"when": np.int64(3)})])
    assert read(path, SNAPSHOT) == {"meta": {"day": 2}}
    assert os.listdir(tmp_path) == ["day.snap"]


def test_a_written_file_gets_the_mode_the_umask_gives(tmp_path: Path) -> None:
    """The temporary file is not created 0600: the umask decides, as for any new file."""
    old = os.umask(0o027)
    try:
        write(tmp_path / "day.snap", SNAPSHOT, [])
    finally:
        os.umask(old)
    assert (tmp_path / "day.snap").stat().st_mode & 0o777 == 0o640


def test_a_missing_file_raises_file_not_found(tmp_path: Path) -> None:
    """A missing file is FileNotFoundError, unchanged, naming the path."""
    with pytest.raises(FileNotFoundError, match=r"nothing\.snap"):
        read(tmp_path / "nothing.snap", SNAPSHOT)


def test_an_empty_file_holds_no_sections() -> None:
    """A file of no sections is just its header, and reads back as nothing."""
    data = encode(REPORT, [])
    assert len(data) == 20 and decode(data, REPORT) == {}


@pytest.mark.parametrize(
    ("name", "problem"),
    [("", "0 bytes"), ("x" * 256, "256 bytes"), ("é" * 128, "256 bytes")],
)
def test_section_names_must_be_1_to_255_utf8_bytes(name: str, problem: str) -> None:
    """Empty and over-long names (counted in UTF-8 bytes) are refused, naming the section."""
    with pytest.raises(ValueError, match=problem) as info:
        encode(SNAPSHOT, [Section(name, {})])
    assert str(info.value).startswith(f"section name {name!r:.40} is ")
    longest = "é" * 127 + "x"
    assert list(decode(encode(SNAPSHOT, [Section(longest, {})]), SNAPSHOT)) == [longest]


def test_duplicate_section_names_are_refused() -> None:
    """Two sections of one name are refused, naming it."""
    with pytest.raises(ValueError, match="section name 'meta' is used twice"):
        encode(SNAPSHOT, [Section("meta", {}), Section("meta", Columns())])


def test_values_a_file_cannot_hold_are_refused_with_where_they_are() -> None:
    """Non-plain META values, odd object cells and unsupported dtypes name where they are."""
    with pytest.raises(ValueError, match=r"section 'm': value\['a'\]\[1\] is <class 'set'>"):
        encode(SNAPSHOT, [Section("m", {"a": [1, set()]})])
    with pytest.raises(ValueError, match="key that is not a str"):
        encode(SNAPSHOT, [Section("m", {"a": {1: 2}})])
    with pytest.raises(ValueError, match="beyond 64 bits"):
        encode(SNAPSHOT, [Section("m", {"a": 2**64})])
    with pytest.raises(ValueError, match="column 'c' holds <class 'int'>"):
        encode(SNAPSHOT, [Section("t", Columns(c=_objects("a", 0)))])
    with pytest.raises(ValueError, match="column 'v' is"):
        encode(SNAPSHOT, [Section("t", Columns(v=np.zeros(2, dtype="V4")))])
    with pytest.raises(ValueError, match="neither 'snapshot' nor 'report'"):
        encode("snap", [])


def test_a_flipped_payload_byte_names_the_corrupt_section() -> None:
    """A damaged payload is caught by its checksum, naming the section and its first byte."""
    data = bytearray(encode(SNAPSHOT, sample()))
    entry = data.index(b"groups")
    offset, length, _ = struct.unpack_from("<QQI", data, entry + 6)
    data[offset + 9 + length // 2] ^= 0x01
    message = refused(bytes(data))
    assert "section 'groups' is corrupt (checksum 0x" in message
    assert f"(at byte {offset + 9})" in message and "copy it again or save it again" in message


@pytest.mark.parametrize(
    ("where", "field"),
    [(8, "version"), (10, "reserved"), (16, "type"), (18, "name"), (26, "offset"), (40, "crc")],
)
def test_a_flipped_header_byte_fails_the_header_checksum(where: int, field: str) -> None:
    """Damage to any header field, the version included, fails the header checksum."""
    data = bytearray(encode(SNAPSHOT, sample()))
    data[where] ^= 0x10
    message = refused(bytes(data))
    assert "the header is corrupt (checksum 0x" in message, field
    assert "copy it again or save it again" in message


def test_a_damaged_section_count_is_refused() -> None:
    """A section count made huge runs past the file, and the message allows for damage."""
    data = bytearray(encode(SNAPSHOT, sample()))
    data[14] ^= 0x10
    message = refused(bytes(data))
    assert f"the file is {len(data)} bytes but needs " in message
    assert "its header lists 1048580 sections, unless the header is damaged" in message


def test_truncation_anywhere_says_the_file_was_cut_short() -> None:
    """Cut mid-magic, mid-header, mid-table, mid-checksum, mid-frame and mid-payload."""
    data = encode(SNAPSHOT, sample())
    first = struct.unpack_from("<Q", data, 16 + 2 + 4)[0]
    for cut in (0, 5, 12, 20, first - 2, first + 3, first + 20, len(data) - 1):
        message = refused(data[:cut])
        assert "the file was cut short; copy it again or save it again" in message, cut
        assert f"the file is {cut} bytes but " in message and f"(at byte {cut})" in message
    message = refused(data[: len(data) - 1])
    assert f"needs {len(data)} (it ends inside section 'users')" in message
    assert "needs 16 (it ends inside the fixed header)" in refused(data[:12])
    assert f"needs {len(data)} (it ends inside section 'meta')" in refused(data[: first + 3])
    assert "lists 4 sections" in refused(data[:20])


def test_bytes_after_the_last_section_are_refused() -> None:
    """An appended byte is reported where the file should have ended."""
    data = encode(SNAPSHOT, sample())
    message = refused(data + b"\n")
    assert "1 byte(s) follow the last section" in message and f"(at byte {len(data)})" in message


def test_a_gzip_file_and_a_text_file_are_not_pipeline_files() -> None:
    """Wrong magic says what the file looks like instead."""
    message = refused(gzip.compress(encode(SNAPSHOT, sample())))
    assert "not a pipeline snapshot file: it looks like a gzip file" in message
    message = refused(b"volume\tgroup\tused\nlustre1\tteam\t5\n")
    assert "it looks like text, starting 'volume\\tgroup\\tused\\nlustre1\\tteam" in message
    assert "(at byte 0)" in message
    assert "starts with the bytes 00 01 02" in refused(bytes(range(40)))


def test_a_file_copied_in_text_mode_is_recognised() -> None:
    """A magic whose \\r\\n became \\n says the line endings were changed."""
    data = encode(SNAPSHOT, sample()).replace(b"\r\n", b"\n", 1)
    assert "line endings were changed" in refused(data)


def test_each_kind_refuses_the_other_saying_which_it_is() -> None:
    """A snapshot where a report is expected, and the reverse, say which they are."""
    snap, report = encode(SNAPSHOT, sample()), encode(REPORT, sample())
    message = refused(snap, REPORT)
    assert "this is a snapshot file, not the diff report expected here" in message
    assert "this is a diff report file, not the snapshot expected here" in refused(report)


def test_a_newer_version_asks_for_an_upgrade() -> None:
    """A higher version with a valid header checksum fails on the version itself."""
    data = bytearray(encode(SNAPSHOT, sample()))
    struct.pack_into("<H", data, 8, 3)
    count = struct.unpack_from("<I", data, 12)[0]
    end = 16
    for _ in range(count):
        end += 2 + data[end + 1] + 20
    struct.pack_into("<I", data, end, zlib.crc32(data[:end]))
    message = refused(bytes(data))
    assert (
        "written by a newer pipeline (format version 3, this one reads up to 1) (at byte 8); "
        "upgrade" in message
    )


def test_a_section_whose_frame_disagrees_with_the_table_is_refused() -> None:
    """The type and length written at a section's offset must be the table's."""
    data = bytearray(encode(SNAPSHOT, [Section("meta", {"a": 1}), Section("t", Columns())]))
    offset = struct.unpack_from("<Q", data, 16 + 2 + 4)[0]
    data[offset] = TABLE
    message = refused(bytes(data))
    assert "section 'meta' starts with type 2 and length" in message
    assert "but the header says type 1" in message and f"(at byte {offset})" in message


def test_an_unknown_section_type_is_refused_as_from_a_newer_pipeline() -> None:
    """A type this program does not know is named, and a newer pipeline suspected."""
    data = container([(META, "meta", msgpack.packb({})), (7, "heat", b"\x01\x02")])
    message = refused(data)
    assert "section 'heat' has type 7, which this pipeline does not know" in message
    assert "a newer pipeline may have written it" in message and "upgrade" in message


def test_a_header_written_wrong_is_refused_as_from_another_program() -> None:
    """A header that passes its checksum but breaks the rules was written so, not damaged."""
    twice = container([(META, "meta", msgpack.packb({})), (META, "meta", msgpack.packb({}))])
    assert "section name 'meta' is empty, not UTF-8 or repeated" in refused(twice)
    message = refused(container([], version=0))
    assert "format version 0 with reserved field 0 was never written (at byte 8)" in message
    assert "written by some other program; save it again with the pipeline" in message


def test_meta_that_is_not_a_map_is_refused() -> None:
    """A META payload must be a msgpack map."""
    message = refused(container([(META, "meta", msgpack.packb([1, 2]))]))
    assert "META section 'meta' holds a <class 'list'>, not a map" in message


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        (b"\x01\x00", "its header ends at byte 4 of its 2"),
        (struct.pack("<I", 99) + b"\x80", "its header ends at byte 103 of its 5"),
        (table_payload([1, 2]), "its header is not"),
        (
            table_payload({"rows": 1, "columns": [["a", "<i8", 8], ["a", "<i8", 8]]}, bytes(16)),
            "its header is not",
        ),
        (
            table_payload({"rows": 2, "columns": [["a", "<i8", 8]]}, bytes(8)),
            "column 'a' is not 2 rows of <i8 in 8 bytes",
        ),
        (
            table_payload({"rows": 1, "columns": [["a", "<i8", 16]]}, bytes(8)),
            "column 'a' is not 1 rows of <i8 in 16 bytes",
        ),
        (
            table_payload({"rows": 1, "columns": [["a", "<i8", 8]]}, bytes(16)),
            "take 36 bytes of its 44",
        ),
        (table_payload({"rows": 1, "columns": [["a", "<q9", 8]]}, bytes(8)), "rows of <q9"),
        (table_payload({"rows": 1, "columns": [["a", "|V8", 8]]}, bytes(8)), "rows of |V8"),
        (
            table_payload(
                {"rows": 2, "columns": [["o", "|O", 3]]}, msgpack.packb(["x"]) + bytes(5)
            ),
            "column 'o' is not 2 rows",
        ),
        (
            table_payload({"rows": 1, "columns": [["o", "|O", 2]]}, msgpack.packb([7]) + bytes(6)),
            "column 'o' is not 1 rows",
        ),
    ],
)
def test_a_table_whose_sizes_do_not_add_up_is_refused(payload: bytes, problem: str) -> None:
    """A TABLE payload's header and column sizes must add up to the payload."""
    message = refused(container([(TABLE, "groups", payload)]))
    assert "TABLE section 'groups': " in message and problem in message
    assert "the file is corrupt" in message


def test_errors_from_read_name_the_path(tmp_path: Path) -> None:
    """read's errors start with the path given, so a user knows which file to fix."""
    path = tmp_path / "day.rpt"
    path.write_bytes(encode(SNAPSHOT, sample())[:40])
    with pytest.raises(SnapFileError) as info:
        read(path, REPORT)
    assert str(info.value).startswith(f"{path}: this is a snapshot file")
    assert info.value.source == str(path) and info.value.offset == 0
