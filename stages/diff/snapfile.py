"""Snapshot and diff-report files: named sections in one self-checking binary container.

A file holds a pipeline's saved aggregates (kind ``"snapshot"``) or a diff report
(``"report"``) as named sections, each a dict (META) or a table of numpy columns (TABLE).
A file cut short, corrupted, of the other kind or from a newer pipeline is refused with a
``SnapFileError`` naming the file, the byte and what to do.

Layout (integers little-endian, offsets from the start of the file)::

    magic        8 bytes  b"PLSNAP\\r\\n" (snapshot) or b"PLDIFF\\r\\n" (report)
    version      u16      1
    reserved     u16      0
    count        u32      number of sections
    table        count x { type u8, name_len u8, name (name_len bytes of UTF-8, 1..255),
                           offset u64, length u64, crc u32 (zlib.crc32 of the payload) }
    header_crc   u32      zlib.crc32 of every byte before it (magic through table)
    sections     count x { type u8, length u64, payload (length bytes) }, in table order:
                 the first at the byte after header_crc, each next one right after the one
                 before; type and length repeat the table's. Nothing follows the last.

Every later version keeps this header layout, so a reader checks header_crc before the
version; a newer version may add section types and change what a section's payload holds.

Section types and their payloads:

1 META
    msgpack of a map with str keys whose values are nil, bool, int, float, str, bin,
    arrays and maps with str keys. Keys are written sorted, so equal dicts give equal bytes.
2 TABLE
    u32 ``header_len``; ``header_len`` bytes of msgpack ``{"rows": n, "columns": [[name,
    dtype, nbytes], ...]}``; then each column's ``nbytes`` bytes in order, each followed by
    zero bytes up to a multiple of 8. ``dtype`` is numpy's ``dtype.str``: bool, integer,
    float, complex, datetime (``M8``/``m8``), bytes (``|S<w>``) and str (``<U<w>``, UTF-32)
    columns are ``n`` raw little-endian items; ``"|O"`` columns are a msgpack array of ``n``
    str, bin or nil.

>>> import numpy as np
>>> data = encode(SNAPSHOT, [Section("meta", {"volume": "lustre1"}),
...                          Section("sizes", Columns(uid=np.array([7, 9])))])
>>> found = decode(data, SNAPSHOT)
>>> found["meta"], found["sizes"]["uid"].tolist()
({'volume': 'lustre1'}, [7, 9])
"""

from __future__ import annotations

import codecs
import os
import secrets
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import msgpack  # type: ignore[import-untyped]  # msgpack ships no type information
import numpy as np

from pipeline import Columns

SNAPSHOT = "snapshot"
REPORT = "report"
VERSION = 1
META = 1
TABLE = 2

_MAGIC = {SNAPSHOT: b"PLSNAP\r\n", REPORT: b"PLDIFF\r\n"}
_KIND_OF = {magic: kind for kind, magic in _MAGIC.items()}
_NOUN = {SNAPSHOT: "snapshot", REPORT: "diff report"}
_FIXED = struct.Struct("<8sHHI")  # magic, version, reserved, count
_ENTRY = struct.Struct("<QQI")  # offset, length, crc: the part of a table entry after its name
_FRAME = struct.Struct("<BQ")  # type and length at the start of each section
_U32 = struct.Struct("<I")
_RAW_KINDS = "biufcmMSU"  # fixed-width dtypes whose bytes are the values themselves
_SIGNATURES = {
    b"\x1f\x8b": "gzip",
    b"\x28\xb5\x2f\xfd": "zstd",
    b"BZh": "bzip2",
    b"\xfd7zXZ\x00": "xz",
    b"PK\x03\x04": "zip",
}
_AGAIN = "copy it again or save it again"
# for a header that passed its checksum, so was written wrong rather than damaged since
_ALIEN = "it was written by some other program; save it again with the pipeline"


class SnapFileError(Exception):
    """A snapshot or report file that cannot be read: which file, what is wrong, at which
    byte, and what to do."""

    def __init__(self, message: str, *, source: str = "<bytes>", offset: int = 0) -> None:
        super().__init__(message)
        self.source = source
        self.offset = offset


@dataclass(frozen=True)
class Section:
    """One named part of a file: a dict is written as META, a ``Columns`` as TABLE."""

    name: str
    value: dict[str, Any] | Columns


class _Entry(NamedTuple):
    type: int
    name: str
    offset: int
    length: int
    crc: int
    at: int  # where the entry sits in the table


def encode(kind: str, sections: Sequence[Section]) -> bytes:
    """The bytes of a ``kind`` file holding ``sections``, in order (see the module doc)."""
    magic = _magic(kind)
    parts: list[tuple[int, bytes, bytes]] = []
    for s in sections:
        raw_name = s.name.encode("utf-8")
        if not 1 <= len(raw_name) <= 255:
            msg = f"section name {s.name!r:.40} is {len(raw_name)} bytes of UTF-8; use 1 to 255"
            raise ValueError(msg)
        if any(raw_name == p[1] for p in parts):
            msg = f"section name {s.name!r} is used twice; give each section its own name"
            raise ValueError(msg)
        value: object = s.value
        if isinstance(value, Columns):
            parts.append((TABLE, raw_name, _encode_table(s.name, value)))
        elif isinstance(value, dict):
            plain = _plain(value, f"section {s.name!r}: value")
            parts.append((META, raw_name, msgpack.packb(plain, use_bin_type=True)))
        else:
            msg = f"section {s.name!r} holds a {type(value).__name__}; give a dict or a Columns"
            raise TypeError(msg)
    offset = _FIXED.size + sum(2 + len(n) + _ENTRY.size for _, n, _ in parts) + _U32.size
    head = bytearray(_FIXED.pack(magic, VERSION, 0, len(parts)))
    for type_, name, payload in parts:
        head += bytes((type_, len(name))) + name
        head += _ENTRY.pack(offset, len(payload), zlib.crc32(payload))
        offset += _FRAME.size + len(payload)
    head += _U32.pack(zlib.crc32(head))
    body = (b for t, _, p in parts for b in (_FRAME.pack(t, len(p)), p))
    return b"".join((bytes(head), *body))


def decode(
    data: bytes | memoryview, kind: str, source: str = "<bytes>"
) -> dict[str, dict[str, Any] | Columns]:
    """The sections of a ``kind`` file's bytes, by name, in file order; numeric columns are
    views of ``data``. ``source`` names the data in errors."""
    buf = memoryview(data).cast("B")
    out: dict[str, dict[str, Any] | Columns] = {}
    for e in _check(buf, kind, source):
        start = e.offset + _FRAME.size
        payload = buf[start : start + e.length]
        decoder = _decode_meta if e.type == META else _decode_table
        out[e.name] = decoder(payload, e.name, start, source)
    return out


def write(path: str | os.PathLike[str], kind: str, sections: Sequence[Section]) -> int:
    """Write a ``kind`` file at ``path``, whole or not at all; the number of bytes written."""
    data = encode(kind, sections)
    target = Path(path)
    # Beside the target so the rename stays on one filesystem (and so is atomic); a random
    # part so that two writers of one file never share a temporary file.
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    # 0o666 leaves the mode to the umask, as for any new file (mkstemp would force 0600).
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    # The rename is durable only once the directory that holds it is.
    dir_fd = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return len(data)


def read(path: str | os.PathLike[str], kind: str) -> dict[str, dict[str, Any] | Columns]:
    """The sections of the ``kind`` file at ``path`` (see ``decode``); a missing file raises
    ``FileNotFoundError`` as ``open`` does."""
    source = os.fspath(path)
    with open(source, "rb") as f:
        data = f.read()
    return decode(data, kind, source)


def _magic(kind: str) -> bytes:
    if kind not in _MAGIC:
        raise ValueError(f"kind {kind!r} is neither {SNAPSHOT!r} nor {REPORT!r}")
    return _MAGIC[kind]


def _fail(source: str, what: str, at: int, todo: str = _AGAIN) -> SnapFileError:
    return SnapFileError(f"{source}: {what} (at byte {at}); {todo}", source=source, offset=at)


def _short(source: str, size: int, need: int, where: str) -> SnapFileError:
    what = f"the file is {size} bytes but needs {need} ({where})"
    return _fail(source, what, size, f"the file was cut short; {_AGAIN}")


def _plain(value: Any, where: str) -> Any:
    """``value`` with each dict's keys sorted, or ValueError naming what is not plain data."""
    if isinstance(value, int) and not -(2**63) <= value < 2**64:
        raise ValueError(f"{where} is {value}, beyond 64 bits; store it as a str")
    if value is None or isinstance(value, (int, float, str, bytes)):  # bool is an int
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: _plain(value[k], f"{where}[{k!r}]") for k in sorted(value)}
    what = "a dict with a key that is not a str" if isinstance(value, dict) else type(value)
    msg = f"{where} is {what}; use str, int, float, bool, None, lists and dicts with str keys"
    raise ValueError(msg)


def _encode_table(name: str, table: Columns) -> bytes:
    specs: list[list[Any]] = []
    blobs: list[bytes] = []
    for col, arr in table.items():
        where = f"section {name!r}: column {col!r}"
        if arr.dtype.kind == "O":
            values = arr.tolist()
            odd = [v for v in values if v is not None and not isinstance(v, (str, bytes))]
            if odd:
                raise ValueError(f"{where} holds {type(odd[0])}; use only str, bytes and None")
            blob, dtype = msgpack.packb(values, use_bin_type=True), "|O"
        elif arr.dtype.kind in _RAW_KINDS:
            # little-endian on every machine, as the layout says
            le = arr.astype(arr.dtype.newbyteorder("<"), copy=False)
            blob, dtype = le.tobytes(), le.dtype.str
        else:
            raise ValueError(f"{where} is {arr.dtype}; use numbers, bool, S, U or object")
        specs.append([col, dtype, len(blob)])
        blobs += [blob, bytes(-len(blob) % 8)]
    header = msgpack.packb({"rows": len(table), "columns": specs}, use_bin_type=True)
    return b"".join((_U32.pack(len(header)), header, *blobs))


def _check(buf: memoryview, kind: str, source: str) -> list[_Entry]:
    """The table of a whole, intact file of ``kind``, or SnapFileError."""
    entries, end = _check_header(buf, kind, source)
    names = [e.name for e in entries]
    for e in entries:
        if not e.name or "\ufffd" in e.name or names.count(e.name) > 1:
            what = f"section name {e.name!r} is empty, not UTF-8 or repeated"
            raise _fail(source, what, e.at, _ALIEN)
        if e.offset != end:
            what = f"section {e.name!r} is listed at byte {e.offset}, not right after the last"
            raise _fail(source, what, e.at, _ALIEN)
        end = e.offset + _FRAME.size + e.length
    size = len(buf)
    if size < end:
        cut = next(e for e in entries if e.offset + _FRAME.size + e.length > size)
        raise _short(source, size, end, f"it ends inside section {cut.name!r}")
    if size > end:
        what = f"{size - end} byte(s) follow the last section, where the file should end"
        raise _fail(source, what, end, f"something was added to the file; {_AGAIN}")
    for e in entries:
        found, start = _FRAME.unpack_from(buf, e.offset), e.offset + _FRAME.size
        if found != (e.type, e.length):
            what = (
                f"section {e.name!r} starts with type {found[0]} and length {found[1]}, "
                f"but the header says type {e.type} and length {e.length}"
            )
            raise _fail(source, what, e.offset, f"the file is corrupt; {_AGAIN}")
        crc = zlib.crc32(buf[start : start + e.length])
        if crc != e.crc:
            what = f"section {e.name!r} is corrupt (checksum {crc:#010x}, expected {e.crc:#010x})"
            raise _fail(source, what, start)
        if e.type not in (META, TABLE):
            what = (
                f"section {e.name!r} has type {e.type}, which this pipeline does not know "
                f"(it reads {META} META and {TABLE} TABLE); a newer pipeline may have written it"
            )
            raise _fail(source, what, e.offset, "upgrade this pipeline to read it")
    return entries


def _check_header(buf: memoryview, kind: str, source: str) -> tuple[list[_Entry], int]:
    """The table of a file whose magic, header checksum and version are right, and where the
    header ends; or SnapFileError. The checksum comes first so that a damaged version field
    is reported as damage (every version keeps this header's layout)."""
    size, want = len(buf), _magic(kind)
    start = bytes(buf[: len(want)])
    if size < _FIXED.size and want.startswith(start):
        raise _short(source, size, _FIXED.size, "it ends inside the fixed header")
    if start in _KIND_OF and start != want:
        what = f"this is a {_NOUN[_KIND_OF[start]]} file, not the {_NOUN[kind]} expected here"
        raise _fail(source, what, 0, f"give a {_NOUN[kind]} file instead")
    if start != want:
        what = f"not a pipeline {_NOUN[kind]} file: {_looks_like(bytes(buf[:32]))}"
        raise _fail(source, what, 0, f"give a file the pipeline saved (it starts {want!r})")
    _, version, reserved, count = _FIXED.unpack_from(buf)
    entries, pos = [], _FIXED.size
    # a count that is itself damaged also runs past the end; the remedy is the same
    listing = f"its header lists {count} sections, unless the header is damaged"
    for _ in range(count):
        name_end = pos + 2 + (buf[pos + 1] if pos + 2 <= size else 0)
        if name_end + _ENTRY.size > size:
            raise _short(source, size, name_end + _ENTRY.size, listing)
        name = bytes(buf[pos + 2 : name_end]).decode("utf-8", "replace")
        offset, length, crc = _ENTRY.unpack_from(buf, name_end)
        entries.append(_Entry(buf[pos], name, offset, length, crc, pos))
        pos = name_end + _ENTRY.size
    if pos + _U32.size > size:
        raise _short(source, size, pos + _U32.size, listing)
    (stored,), crc = _U32.unpack_from(buf, pos), zlib.crc32(buf[:pos])
    if stored != crc:
        what = f"the header is corrupt (checksum {crc:#010x}, stored {stored:#010x})"
        raise _fail(source, what, pos)
    if version > VERSION:
        what = f"written by a newer pipeline (format version {version}, this one reads up to "
        raise _fail(source, f"{what}{VERSION})", 8, "upgrade this pipeline to read it")
    if version == 0 or reserved != 0:
        what = f"format version {version} with reserved field {reserved} was never written"
        raise _fail(source, what, 8, _ALIEN)
    return entries, pos + _U32.size


def _decode_meta(payload: memoryview, name: str, at: int, source: str) -> dict[str, Any]:
    try:
        value = msgpack.unpackb(payload, raw=False)
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise _fail(source, f"META section {name!r} is not msgpack ({exc})", at) from exc
    if not isinstance(value, dict):
        raise _fail(source, f"META section {name!r} holds a {type(value)}, not a map", at)
    return value


def _decode_table(payload: memoryview, name: str, at: int, source: str) -> Columns:
    size, where = len(payload), f"TABLE section {name!r}"
    (header_len,) = _U32.unpack_from(payload) if size >= _U32.size else (0,)
    pos = _U32.size + header_len
    if pos > size:
        what = f"{where}: its header ends at byte {pos} of its {size}"
        raise _fail(source, what, at, f"the file is corrupt; {_AGAIN}")
    rows, columns = _table_header(payload[_U32.size : pos], where, at + _U32.size, source)
    arrays: dict[str, np.ndarray[Any, Any]] = {}
    for col, dtype, nbytes in columns:
        arr = _column(payload[pos : pos + nbytes], dtype) if pos + nbytes <= size else None
        if arr is None or len(arr) != rows:
            what = f"{where}: column {col!r} is not {rows} rows of {dtype} in {nbytes} bytes"
            raise _fail(source, what, at + pos, f"the file is corrupt; {_AGAIN}")
        arrays[col] = arr
        pos += nbytes + -nbytes % 8
    if pos != size:
        what = f"{where}: its header and columns take {pos} bytes of its {size}"
        raise _fail(source, what, at, f"the file is corrupt; {_AGAIN}")
    return Columns(arrays)


def _table_header(
    data: memoryview, where: str, at: int, source: str
) -> tuple[int, list[tuple[str, str, int]]]:
    """The rows and ``(name, dtype, nbytes)`` columns of a TABLE's header, or SnapFileError."""
    try:
        header = msgpack.unpackb(data, raw=False)
    except (ValueError, TypeError, msgpack.UnpackException):
        header = None
    if isinstance(header, dict) and set(header) == {"rows", "columns"}:
        rows, listed = header["rows"], header["columns"]
        if type(rows) is int and rows >= 0 and isinstance(listed, list):
            columns = [(c[0], c[1], c[2]) for c in listed if _is_spec(c)]
            if len(columns) == len(listed) == len({c[0] for c in columns}):
                return rows, columns
    what = f"{where}: its header is not {{'rows': n, 'columns': [[name, dtype, nbytes]...]}}"
    raise _fail(source, f"{what}: {header!r:.80}", at, f"the file is corrupt; {_AGAIN}")


def _is_spec(c: Any) -> bool:
    """Whether ``c`` is a TABLE header's ``[name, dtype, nbytes]``."""
    return (
        isinstance(c, list)
        and len(c) == 3
        and isinstance(c[0], str)
        and isinstance(c[1], str)
        and type(c[2]) is int
        and c[2] >= 0
    )


def _column(chunk: memoryview, dtype_str: str) -> np.ndarray[Any, Any] | None:
    """The column stored in ``chunk`` (raw ones share its memory), or None if it is not one."""
    if dtype_str == "|O":
        try:
            values = msgpack.unpackb(chunk, raw=False)
        except (ValueError, TypeError, msgpack.UnpackException):
            return None
        if not isinstance(values, list) or any(
            v is not None and not isinstance(v, (str, bytes)) for v in values
        ):
            return None
        arr = np.empty(len(values), dtype=object)
        arr[:] = values
        return arr
    try:
        dtype = np.dtype(dtype_str)
    except (TypeError, ValueError):
        return None
    if dtype.kind not in _RAW_KINDS or dtype.str != dtype_str or not dtype.itemsize:
        return None
    return np.frombuffer(chunk, dtype) if len(chunk) % dtype.itemsize == 0 else None


def _looks_like(start: bytes) -> str:
    """What a file that is not ours seems to be, from its first bytes, for the error message."""
    if start[:6] in (b"PLSNAP", b"PLDIFF"):
        return "its line endings were changed, as copying in text mode does; copy it in binary mode"
    for signature, what in _SIGNATURES.items():
        if start.startswith(signature):
            return f"it looks like a {what} file"
    try:
        # an incremental decoder forgives a character cut in two at the end of ``start``
        text = codecs.getincrementaldecoder("utf-8")().decode(start)
    except UnicodeDecodeError:
        text = ""
    if text and text.replace("\t", "").replace("\r", "").replace("\n", "").isprintable():
        return f"it looks like text, starting {text!r}"
    return f"it starts with the bytes {start[:8].hex(' ')}"
