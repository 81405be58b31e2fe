"""What an uploaded payload must be, checked member by member without unpacking it.

A tarball is what Red Hat's analytics collector packs: data members ``./<key>.<ext>``, and
``./config.json``, ``./data_collection_status.csv`` (its header first) and
``./manifest.json`` (each other member's file name -> its version string), all regular
files directly under ``./``. The check reads the gzip stream once, stops as soon as the
data unpacks past a limit (a small gzip can unpack to any size), and names the first
thing wrong in a ``Refused`` (HTTP 400).

>>> member_name("./config.json")
'config.json'
>>> member_name("./sub/x.json")
Traceback (most recent call last):
...
stages.ingress.payload.Refused: member name './sub/x.json' is not directly ./<name> ...
"""

from __future__ import annotations

import gzip
import json
import tarfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

REQUIRED = ("manifest.json", "config.json", "data_collection_status.csv")
STATUS_HEADER = "collection_start_timestamp,since,until,file_name,status,elapsed"
#: a manifest larger than this is not one
MANIFEST_MAX = 1024**2


class Refused(Exception):
    """A request the server turns down: the HTTP status and the reason the client gets."""

    def __init__(self, status: int, reason: str, headers: Mapping[str, str] | None = None):
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.headers = dict(headers or {})


def bad(reason: str) -> Refused:
    """A 400 refusal: the payload is not what it must be."""
    return Refused(400, reason)


# ---------------------------------------------------------------------------- the tarball


@dataclass(frozen=True)
class Contents:
    """What a tarball holds: each member's size by bare name, and its manifest."""

    members: dict[str, int]
    manifest: dict[str, str]


def member_name(name: str) -> str:
    """The bare file name of member ``name``, which must be ``./<name>``; else ``Refused``."""
    if name.startswith("/"):
        raise bad(f"member name {name!r} is absolute; members are ./<name>")
    if ".." in name.split("/"):
        raise bad(f"member name {name!r} climbs out with '..'; members are ./<name>")
    bare = name.removeprefix("./")
    if not name.startswith("./") or not bare or "/" in bare or bare == ".":
        raise bad(f"member name {name!r} is not directly ./<name> (no sub-directories)")
    return bare


def _kind(m: tarfile.TarInfo) -> str:
    if m.issym():
        return f"a symbolic link (to {m.linkname!r})"
    if m.islnk():
        return f"a hard link (to {m.linkname!r})"
    if m.isdir():
        return "a directory"
    if m.ischr() or m.isblk():
        return "a device"
    if m.isfifo():
        return "a FIFO"
    return f"of tar type {m.type!r}"


class _Reader(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class _Counted:
    """A reader that stops with ``Refused`` once more than ``limit`` bytes came through
    (the uncompressed stream: a small gzip can unpack to any size)."""

    def __init__(self, raw: _Reader, limit: int):
        self.raw, self.limit, self.total = raw, limit, 0

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.total += len(data)
        if self.total > self.limit:
            raise _unpacks_past(self.limit)
        return data


def _unpacks_past(limit: int) -> Refused:
    return bad(f"the tarball unpacks to more than {limit:,} bytes (--max-unpacked)")


def inspect_tarball(path: Path, max_unpacked: int) -> Contents:
    """Check the tarball at ``path`` member by member, reading no more than ``max_unpacked``
    uncompressed bytes; ``Refused`` (400) naming the first thing wrong."""
    with path.open("rb") as raw:
        if raw.read(2) != b"\x1f\x8b":
            raise bad("the file is not gzip-compressed; send a .tar.gz")
        raw.seek(0)
        try:
            with gzip.GzipFile(fileobj=raw, mode="rb") as unzipped:
                return _read_members(_Counted(unzipped, max_unpacked), max_unpacked)
        except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
            raise bad(f"the gzip stream is damaged or cut short: {exc}") from None
        except tarfile.TarError as exc:
            raise bad(f"the gzip stream does not hold a tar archive: {exc}") from None


def _read_members(stream: _Counted, max_unpacked: int) -> Contents:
    members: dict[str, int] = {}
    declared = 0
    manifest_text = status_line = None
    with tarfile.open(fileobj=stream, mode="r|") as tar:  # type: ignore[call-overload]
        for m in tar:
            name = member_name(m.name)
            if not m.isreg():
                raise bad(f"member {m.name!r} is {_kind(m)}; only regular files are taken")
            if name in members:
                raise bad(f"member {m.name!r} appears twice")
            declared += m.size
            if declared > max_unpacked:
                raise _unpacks_past(max_unpacked)
            members[name] = m.size
            data = tar.extractfile(m)
            assert data is not None  # a regular file always has its data
            if name == "manifest.json":
                if m.size > MANIFEST_MAX:
                    raise bad(f"manifest.json is {m.size:,} bytes; over {MANIFEST_MAX:,} it "
                               "is not a manifest")  # fmt: skip
                manifest_text = data.read()
            elif name == "data_collection_status.csv":
                status_line = data.readline(len(STATUS_HEADER) + 3)
    return _checked(members, manifest_text, status_line)


def _checked(members: dict[str, int], manifest_text: bytes | None,
             status_line: bytes | None) -> Contents:  # fmt: skip
    """The members read: the required ones there, the status header, the manifest."""
    for need in REQUIRED:
        if need not in members:
            wanted = ", ".join("./" + r for r in REQUIRED)
            raise bad(f"the required member ./{need} is missing (a payload holds {wanted} "
                       "and its data members)")  # fmt: skip
    assert manifest_text is not None and status_line is not None
    manifest = _manifest(manifest_text)
    header = status_line.decode("utf-8", "replace").rstrip("\r\n")
    if header != STATUS_HEADER:
        shown = header[: len(STATUS_HEADER)]
        raise bad(f"data_collection_status.csv starts with {shown!r}, not the header "
                   f"{STATUS_HEADER!r}")  # fmt: skip
    for name in members:
        if name != "manifest.json" and name not in manifest:
            raise bad(f"member ./{name} is not listed in manifest.json")
    for name in manifest:
        if name == "manifest.json":
            raise bad("manifest.json lists itself; it lists the other members only")
        if name not in members:
            raise bad(f"manifest.json lists {name!r} but the tarball has no member ./{name}")
    return Contents(members, manifest)


def _manifest(text: bytes) -> dict[str, str]:
    try:
        manifest = json.loads(text)
    except ValueError as exc:
        raise bad(f"manifest.json is not JSON: {exc}") from None
    if not isinstance(manifest, dict):
        raise bad(f"manifest.json holds a {type(manifest).__name__}, not an object of file "
                   "name -> version")  # fmt: skip
    for name, version in manifest.items():
        if not isinstance(version, str):
            raise bad(f"manifest.json maps {name!r} to {json.dumps(version)}, not to a "
                       'version string (e.g. "1.0")')  # fmt: skip
    return manifest
