"""The compiled line parser: every path encoding, every Go escape, every way a line is bad."""

from __future__ import annotations

import base64

import numpy as np
import pytest

from stages.wrstat import layout as K
from stages.wrstat.basedirs import Rules
from stages.wrstat.parse import count_lines, parse, rejects
from stages.wrstat.tally import Tally

NUMBERS = b"\t10\t20\t30\t1700000000\t1700000001\t1700000002\tf\t99\t1\t64768"
STD = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
SORTED = b"+/0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def one(field: bytes, encoding: int, rest: bytes = NUMBERS, ncols: int = 11):  # type: ignore[no-untyped-def]
    parsed = parse(np.frombuffer(field + rest + b"\n", dtype=np.uint8), encoding, ncols)
    assert parsed.n == 1
    return parsed


def path_of(field: bytes, encoding: int) -> bytes:
    parsed = one(field, encoding)
    assert parsed.status[0] == K.OK, K.reason(int(parsed.status[0]), int(parsed.aux[0]), 11, 0)
    return bytes(parsed.path_data[parsed.path_off[0] : parsed.path_off[1]])


@pytest.mark.parametrize(
    ("quoted", "raw"),
    [
        (rb'"/a/b"', b"/a/b"),
        (rb'"/t\tx"', b"/t\tx"),
        (rb'"/n\nr\r"', b"/n\nr\r"),
        (rb'"/\a\b\f\v"', b"/\a\b\f\v"),
        (rb'"/back\\slash"', b"/back\\slash"),
        (rb'"/\"quoted\""', b'/"quoted"'),
        (rb'"/\x80\xff"', b"/\x80\xff"),  # bytes that are not UTF-8 stay as they are
        (rb'"/\101\303\251"', b"/A\xc3\xa9"),  # octal
        (rb'"/\u00e9"', "/\u00e9".encode()),
        (rb'"/\U0001F600"', "/\U0001f600".encode()),
        ('"/é😀"'.encode(), "/é😀".encode()),  # UTF-8 as it is
    ],
)
def test_every_go_escape_is_unquoted_to_bytes(quoted: bytes, raw: bytes) -> None:
    assert path_of(quoted, K.QUOTED) == raw


@pytest.mark.parametrize(
    "quoted",
    [rb'"/a\q"', rb'"/a\x4"', rb'"/a\xZZ"', rb'"/a\400"', rb'"/a\uD800"', rb'"/a\U00110000"',
     rb'"/a"b"', rb'"/a\"', rb'"/a', rb"/a", rb"""'/a'"""],
)  # fmt: skip
def test_bad_quoting_is_rejected_with_where_it_went_wrong(quoted: bytes) -> None:
    parsed = one(quoted, K.QUOTED)
    assert parsed.status[0] == K.BAD_QUOTING
    assert "not a valid Go-quoted string (at character" in K.reason(
        int(parsed.status[0]), int(parsed.aux[0]), 11, K.QUOTED
    )


@pytest.mark.parametrize("length", range(1, 12))
def test_base64_of_every_padding(length: int) -> None:
    raw = b"/" + bytes(range(200, 200 + length - 1))
    assert path_of(base64.b64encode(raw), K.BASE64) == raw
    sorted_field = base64.b64encode(raw).translate(bytes.maketrans(STD, SORTED))
    assert path_of(sorted_field, K.BASE64_SORTED) == raw


@pytest.mark.parametrize("field", [b"L2E*", b"L2E", b"L2E==", b"=L2E", b"L2 E"])
def test_bad_base64_is_rejected(field: bytes) -> None:
    parsed = one(field, K.BASE64)
    assert parsed.status[0] == K.BAD_BASE64


def test_a_path_that_is_not_absolute_is_rejected() -> None:
    parsed = one(base64.b64encode(b"relative/x"), K.BASE64)
    assert parsed.status[0] == K.NOT_ABSOLUTE


def test_columns_are_typed_and_wide_enough() -> None:
    rest = b"\t%d\t%d\t%d\t-5\t0\t%d\tl\t%d\t0\t%d\t77" % (
        2**63 - 1, 2**32 - 1, 2**32 - 1, 2**62, 2**64 - 1, 2**64 - 1
    )  # fmt: skip
    parsed = one(b'"/x"', K.QUOTED, rest, ncols=12)
    assert parsed.status[0] == K.OK
    c = parsed.columns
    assert int(c["size"][0]) == 2**63 - 1
    assert c["uid"].dtype == np.uint32 and int(c["uid"][0]) == 2**32 - 1
    assert int(c["gid"][0]) == 2**32 - 1
    assert int(c["atime"][0]) == -5  # times before 1970 are kept
    assert c["inode"].dtype == np.uint64 and int(c["inode"][0]) == 2**64 - 1
    assert int(c["dev"][0]) == 2**64 - 1
    assert int(c["apparent"][0]) == 77
    assert bytes(c["type"][:1]) == b"l"


@pytest.mark.parametrize(
    ("rest", "status", "why"),
    [
        (b"\t10\t20", K.COLUMNS, "expected 11 tab-separated columns, found 3"),
        (NUMBERS + b"\t5", K.COLUMNS, "expected 11 tab-separated columns, found 12"),
        (b"\t1x\t20\t30\t1\t1\t1\tf\t1\t1\t1", K.NOT_A_NUMBER, "column 2 (size) is not a number"),
        (b"\t10\t\t30\t1\t1\t1\tf\t1\t1\t1", K.NOT_A_NUMBER, "column 3 (uid) is not a number"),
        (b"\t-10\t20\t30\t1\t1\t1\tf\t1\t1\t1", K.OUT_OF_RANGE, "column 2 (size) is out of range"),
        (b"\t10\t4294967296\t30\t1\t1\t1\tf\t1\t1\t1", K.OUT_OF_RANGE,
         "column 3 (uid) is out of range"),
        (b"\t10\t20\t30\t1\t1\t1\tf\t18446744073709551616\t1\t1", K.OUT_OF_RANGE,
         "column 9 (inode) is out of range"),
        (b"\t10\t20\t30\t1\t1\t1\tq\t1\t1\t1", K.BAD_TYPE, "column 8 (type) is not one of"),
        (b"\t10\t20\t30\t1\t1\t1\tff\t1\t1\t1", K.BAD_TYPE, "column 8 (type) is not one of"),
    ],
)  # fmt: skip
def test_bad_fields_are_rejected_with_the_column_named(rest: bytes, status: int, why: str) -> None:
    parsed = one(b'"/x"', K.QUOTED, rest)
    assert parsed.status[0] == status
    assert K.reason(int(parsed.status[0]), int(parsed.aux[0]), 11, K.QUOTED).startswith(why)


def test_a_wrong_column_count_is_the_reason_whatever_else_is_wrong() -> None:
    parsed = one(b'"/x\\q"', K.QUOTED, b"\tnan\t3")
    assert K.reason(int(parsed.status[0]), int(parsed.aux[0]), 11, K.QUOTED) == (
        "expected 11 tab-separated columns, found 3"
    )


def test_rejects_name_the_file_and_line_and_escape_the_raw_line() -> None:
    good = b'"/ok"' + NUMBERS
    data = b"\n".join([good, b"", b"bad\tline\x80", good]) + b"\n"
    buf = np.frombuffer(data, dtype=np.uint8)
    assert count_lines(buf) == 4
    parsed = parse(buf, K.QUOTED, 11)
    assert parsed.accepted == 2
    got = rejects(parsed, buf, "f.stats.gz", 41, 11, K.QUOTED)
    assert got == [
        {"kind": "reject", "file": "f.stats.gz", "line": 42, "reason": "the line is empty",
         "raw": ""},
        {"kind": "reject", "file": "f.stats.gz", "line": 43,
         "reason": "expected 11 tab-separated columns, found 2", "raw": "bad\\tline\\x80"},
    ]  # fmt: skip


def test_the_tally_reuses_shared_prefixes_without_mixing_paths_up() -> None:
    """Consecutive paths share most bytes; the compiled tally decodes only what differs.
    Paths that differ in the last byte of a base64 group, or after an escape, or after a
    rejected line, must still land in their own rows."""
    snapshot = 1_800_000_000
    paths = [
        b"/lustre/scratch1/hgi/projects/aaa/x",
        b"/lustre/scratch1/hgi/projects/aab/x",  # differs inside a base64 group
        b"/lustre/scratch1/hgi/projects/aab",
        b"/lustre/scratch1/hgi/projects/aab/x/y/z",
        b"/lustre/scratch1/hgi/projects/aa",
        b"/lustre/scratch1/hgi/projects/aa\t/x",
    ]
    for encoding in (K.BASE64, K.QUOTED):
        lines = []
        for i, p in enumerate(paths):
            if encoding == K.QUOTED:
                field = b'"' + p.replace(b"\t", b"\\t") + b'"'
            else:
                field = base64.b64encode(p)
            lines.append(field + b"\t%d\t1\t7\t1\t1\t1\tf\t%d\t1\t1" % (10**i, i))
            if i == 2:
                lines.append(b"garbage")
        tally = Tally(Rules())
        data = np.frombuffer(b"\n".join(lines) + b"\n", dtype=np.uint8)
        bad = tally.add(data, encoding, 11, snapshot, "f", 1)
        assert [r["line"] for r in bad] == [4]
        cols = tally.partial()["dirs"]
        rows = {
            (b, s): int(u)
            for b, s, u in zip(cols["base"].tolist(), cols["sub"].tolist(),
                               cols["usage"].tolist(), strict=True)
        }  # fmt: skip
        base = b"/lustre/scratch1/hgi/projects"
        assert rows == {
            (base + b"/aaa", b"."): 1,
            (base + b"/aab", b"."): 10 + 100,
            (base + b"/aab", b"x"): 1000,
            (base + b"/aa", b"."): 10_000,
            (base + b"/aa\t", b"."): 100_000,
        }, encoding
