"""A plain line-by-line reference implementation of the wrstat reports, written from the
specification alone: the tests' oracle. Slow and simple on purpose; it shares no code with
the stages it checks."""

from __future__ import annotations

import base64
import calendar
import gzip
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

STD = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
SORTED = b"+/0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
FROM_SORTED = bytes.maketrans(SORTED, STD)
TYPES = ["bam", "cram", "sam", "vcf", "vcf.gz", "fastq", "fastq.gz", "bed/ped", "other"]
SIMPLE = {ord("a"): 7, ord("b"): 8, ord("f"): 12, ord("n"): 10, ord("r"): 13, ord("t"): 9,
          ord("v"): 11, ord("\\"): 92, ord('"'): 34}  # fmt: skip


class Bad(Exception):
    pass


def go_unquote(field: bytes) -> bytes:
    if len(field) < 2 or field[:1] != b'"' or field[-1:] != b'"':
        raise Bad("quoting")
    s = field[1:-1]
    out = bytearray()
    i = 0
    while i < len(s):
        c = s[i]
        if c == ord('"'):
            raise Bad("quoting")
        if c != ord("\\"):
            out.append(c)
            i += 1
            continue
        if i + 1 >= len(s):
            raise Bad("quoting")
        e = s[i + 1]
        if e in SIMPLE:
            out.append(SIMPLE[e])
            i += 2
        elif e == ord("x"):
            if not re.fullmatch(rb"[0-9a-fA-F]{2}", s[i + 2 : i + 4]):
                raise Bad("quoting")
            out.append(int(s[i + 2 : i + 4], 16))
            i += 4
        elif ord("0") <= e <= ord("7"):
            digits = s[i + 1 : i + 4]
            if not re.fullmatch(rb"[0-7]{3}", digits) or int(digits, 8) > 255:
                raise Bad("quoting")
            out.append(int(digits, 8))
            i += 4
        elif e in (ord("u"), ord("U")):
            n = 4 if e == ord("u") else 8
            digits = s[i + 2 : i + 2 + n]
            if not re.fullmatch(rb"[0-9a-fA-F]{%d}" % n, digits):
                raise Bad("quoting")
            r = int(digits, 16)
            if r > 0x10FFFF or 0xD800 <= r <= 0xDFFF:
                raise Bad("quoting")
            out += chr(r).encode("utf-8")
            i += 2 + n
        else:
            raise Bad("quoting")
    return bytes(out)


def decode_path(field: bytes, encoding: str) -> bytes:
    if encoding == "quoted":
        path = go_unquote(field)
    else:
        if encoding == "sorted":
            field = field.translate(FROM_SORTED)
        try:
            path = base64.b64decode(field, validate=True)
        except ValueError:
            raise Bad("base64") from None
    if not path.startswith(b"/"):
        raise Bad("not absolute")
    return path


def encoding_of(first: bytes) -> str:
    return {"L": "base64", "9": "sorted", '"': "quoted"}[chr(first[0])]


@dataclass
class Entry:
    path: bytes
    size: int
    uid: int
    gid: int
    mtime: int
    type: str
    nlink: int
    atime: int


def parse_line(line: bytes, encoding: str, ncols: int) -> Entry:
    fields = line.split(b"\t")
    if len(fields) != ncols:
        raise Bad("columns")
    path = decode_path(fields[0], encoding)
    nums = []
    for i, f in enumerate(fields[1:], 2):
        if i == 8:
            continue
        if not re.fullmatch(rb"-?[0-9]+", f):
            raise Bad("number")
        v = int(f)
        if v < 0 and i not in (5, 6, 7):
            raise Bad("range")
        if i in (3, 4) and v > 0xFFFFFFFF:
            raise Bad("range")
        nums.append(v)
    if fields[7] not in (b"f", b"d", b"l", b"s", b"b", b"c", b"F", b"X"):
        raise Bad("type")
    size, uid, gid, atime, mtime, _ctime, _inode, nlink = nums[:8]
    return Entry(path, size, uid, gid, mtime, fields[7].decode(), nlink, atime)


def components(path: bytes) -> list[bytes]:
    if len(path) > 1 and path.endswith(b"/"):
        path = path[:-1]
    return [] if path == b"/" else path[1:].split(b"/")


def base_depth(comps: list[bytes]) -> int:
    text = "/" + "/".join(c.decode("utf-8", "surrogateescape") for c in comps)
    depth = 5 if re.match(r"^/lustre/scratch\d+/(humgen|hgi|tol|pam|opentargets)(/|$)", text) else 4
    if any(re.fullmatch(rb"mdt\d+", c) for c in comps[:depth]):
        depth += 1
    return depth


def classify(path: bytes, etype: str) -> tuple[bytes | None, bytes]:
    comps = components(path)
    depth = base_depth(comps)
    if len(comps) < depth:
        return None, b"."
    base = b"/" + b"/".join(comps[:depth])
    below = comps[depth:]
    if not below:
        return base, b"."
    if len(below) == 1:
        return base, below[0] if etype == "d" else b"."
    if below[0] in (b"users", b"projects"):
        if len(below) == 2 and etype != "d":
            return base, below[0]
        return base, below[0] + b"/" + below[1]
    return base, below[0]


def file_type(path: bytes) -> int:
    name = components(path)[-1].lower() if components(path) else b""
    for suffixes, t in (((b".bam",), 0), ((b".cram",), 1), ((b".sam",), 2), ((b".vcf",), 3),
                        ((b".vcf.gz",), 4), ((b".fastq", b".fq"), 5),
                        ((b".fastq.gz", b".fq.gz"), 6), ((b".bed", b".ped"), 7)):  # fmt: skip
        if any(name.endswith(s) for s in suffixes):
            return t
    return 8


@dataclass
class Reference:
    groups: dict[tuple[str, int, bytes | None], list[int]] = field(default_factory=dict)
    users: dict[tuple[str, int, int], list[int]] = field(default_factory=dict)
    dirs: dict[tuple[str, int, bytes | None, bytes], list[int]] = field(default_factory=dict)
    #: (volume, gid) -> {("mtime" | "atime", class): [usage, files]}
    ages: dict[tuple[str, int], dict[tuple[str, str], list[int]]] = field(default_factory=dict)
    rejects: list[tuple[str, int]] = field(default_factory=list)
    lines: dict[str, int] = field(default_factory=dict)
    snapshots: dict[str, int] = field(default_factory=dict)


#: wrstat's age classes: at least this many months old (a month: 365 days / 12)
AGE_MONTHS = {"<1m": 0, "1-2m": 1, "2-6m": 2, "6-12m": 6, "1-2y": 12, "2-3y": 24, "3-5y": 36,
              "5-7y": 60, ">7y": 84}  # fmt: skip


def age_class(snapshot: int, when: int) -> str:
    months = max(0.0, (snapshot - when) / (365 * 86400 / 12))  # a time after it: new
    return [name for name, lower in AGE_MONTHS.items() if months >= lower][-1]


def snapshot_of(path: Path) -> tuple[str, int]:
    m = re.match(r"^(\d{8})_([^.]+)\.", path.name)
    if m:
        return m.group(2), calendar.timegm(time.strptime(m.group(1), "%Y%m%d"))
    m = re.match(r"^(\d{8}-\d{6})_(.+)$", path.parent.name)
    assert m, path
    return m.group(2).split("\uff0f")[-1], calendar.timegm(
        time.strptime(m.group(1), "%Y%m%d-%H%M%S")
    )


def reference(files: list[Path]) -> Reference:
    ref = Reference()
    for path in files:
        volume, snap = snapshot_of(path)
        ref.snapshots[volume] = snap
        with gzip.open(path, "rb") as f:
            lines = f.read().split(b"\n")
        if lines and lines[-1] == b"":
            lines.pop()
        first = next(
            ln for ln in lines if ln.count(b"\t") in (10, 11) and ln[:1] in (b"L", b"9", b'"')
        )
        encoding, ncols = encoding_of(first), first.count(b"\t") + 1
        ref.lines[str(path)] = len(lines)
        for n, line in enumerate(lines, 1):
            try:
                e = parse_line(line, encoding, ncols)
            except Bad:
                ref.rejects.append((str(path), n))
                continue
            usage = e.size // (e.nlink if e.nlink > 0 else 1)
            newest = min(e.mtime, snap)
            is_file = e.type == "f"
            base, sub = classify(e.path, e.type)
            for table, key in (
                (ref.groups, (volume, e.gid, base)),
                (ref.users, (volume, e.uid, e.gid)),
            ):
                row = table.setdefault(key, [0, 0, -(2**63)])
                row[0] += usage
                row[1] += is_file
                row[2] = max(row[2], newest)
            d = ref.dirs.setdefault((volume, e.gid, base, sub), [0, 0, -(2**63)] + [0] * 9)
            d[0] += usage
            d[1] += is_file
            d[2] = max(d[2], newest)
            if is_file:
                d[3 + file_type(e.path)] += usage
            profile = ref.ages.setdefault((volume, e.gid), {})
            for by, when in (("mtime", e.mtime), ("atime", e.atime)):
                cell = profile.setdefault((by, age_class(snap, when)), [0, 0])
                cell[0] += usage
                cell[1] += is_file
    return ref


def days(snapshot: int, newest: int) -> float:
    return max(0.0, round((snapshot - newest) / 86400, 1))
