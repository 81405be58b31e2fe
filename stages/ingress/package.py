"""Collections packed into tarballs of bounded size, in Red Hat's analytics collector's layout.

A tarball (``.tar.gz``) holds, in this order:

* ``./<key>.json`` or ``./<key>.csv``: each collection in it whose status is ``ok``;
* ``./config.json``: the config collection, in every tarball;
* ``./data_collection_status.csv``: one row per collection in the tarball (config aside),
  failed and empty ones included, under the header
  ``collection_start_timestamp,since,until,file_name,status,elapsed`` (times in ISO 8601,
  UTC; elapsed in whole seconds);
* ``./manifest.json``: each other member's file name and version (``config.json``: the
  config collection's; ``data_collection_status.csv``: ``"1.0"``).

JSON is written with sorted keys. Every member is a regular file of mode 0644 owned by
uid and gid 0 with empty owner names and the gathering's ``until`` as its time, and the
gzip header has no name and time 0: the same collections give the same bytes, so a
tarball's SHA-256 can be its idempotency key.

A tarball is named ``<name_base>-<until as %Y-%m-%d-%H%M%S%z, UTC>-<index>.tar.gz``, the
index counting on from the tarballs of that ``until`` already in the folder (0, 1, 2...).

``Packer`` places collections as the reference does: each into the first package of its
shipping group with room for it that does not hold its key yet, else a new one; sliced
collections are built at once into a tarball of their own. A package's data (its
members' bytes and config.json's) never exceeds ``max_data_size``, unless one collection
is larger on its own: a JSON one, or a CSV row too large to share a part with the header.
That collection goes into a package of its own. A CSV larger than the room beside
config.json is cut into parts (``csv_collections``), each part repeating the header, each
``./<key>.csv`` in its own tarball.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import decimal
import glob
import hashlib
import io
import json
import os
import tarfile
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stages.gz import gzip_module
from stages.ingress.registry import CONFIG_KEY, FORMATS, RESERVED_KEYS, valid_key
from stages.ingress.splitter import split_csv

NAME_BASE = "pipeline-results"
CONFIG_FILE = f"{CONFIG_KEY}.json"
STATUS_FILE = "data_collection_status.csv"
MANIFEST_FILE = "manifest.json"
#: the version of the status file in every manifest
STATUS_VERSION = "1.0"
STATUS_HEADER = ("collection_start_timestamp", "since", "until", "file_name", "status", "elapsed")
STATUSES = ("ok", "failed", "empty")
_SUFFIX = ".tar.gz"


class PackageError(Exception):
    """Collections that cannot be packed as given: which one, and what to do."""


@dataclass
class Collection:
    """What one collector gave for one window.

    ``status`` is ``"ok"``, ``"failed"`` (``error`` says why) or ``"empty"``. An ok JSON
    collection holds ``data``; an ok CSV one its file in ``files`` (one per part, see
    ``csv_collections``). Times are timezone-aware.
    """

    key: str
    version: str
    format: str
    since: dt.datetime
    until: dt.datetime
    started: dt.datetime
    elapsed: float
    status: str
    data: Any = None
    files: list[Path] = field(default_factory=list)
    shipping_group: str = "default"
    sliced: bool = False
    error: str | None = None

    @property
    def file_name(self) -> str:
        """Its member's name in a tarball, without ``./``."""
        return f"{self.key}.{self.format}"


@dataclass(frozen=True)
class Built:
    """A tarball built: its SHA-256 (hex), what it holds (config aside), its size and
    the total size of its members unpacked."""

    path: Path
    sha256: str
    collections: list[Collection]
    size: int
    unpacked: int


def _plain(value: object) -> object:
    """JSON for the values database rows commonly hold."""
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal | uuid.UUID):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def encode_json(data: Any) -> bytes:
    """``data`` as the UTF-8 JSON a tarball holds: keys sorted, compact; dates and times
    in ISO 8601, decimals and UUIDs as strings; NaN and infinities refused (ValueError).

    >>> encode_json({"b": 1, "a": [dt.date(2024, 5, 1)]})
    b'{"a":["2024-05-01"],"b":1}'
    """
    text = json.dumps(data, sort_keys=True, ensure_ascii=False, allow_nan=False,
                      separators=(",", ":"), default=_plain)  # fmt: skip
    return text.encode("utf-8")


def _aware(t: object) -> bool:
    return isinstance(t, dt.datetime) and t.utcoffset() is not None


def _check(c: Collection, *, config: bool = False) -> None:
    """Raise a ``PackageError`` unless ``c`` can go into a tarball."""
    what = "config collection" if config else f"collection '{c.key}'"
    if not config and (not valid_key(c.key) or c.key in RESERVED_KEYS):
        msg = (f"{what}: its key cannot name a tarball member (ASCII letters, digits, '_', "
               f"'-' and '.', not one of {', '.join(sorted(RESERVED_KEYS))})")  # fmt: skip
        raise PackageError(msg)
    if c.format not in FORMATS:
        raise PackageError(f"{what}: format {c.format!r} is not one of {', '.join(FORMATS)}")
    if c.status not in STATUSES:
        raise PackageError(f"{what}: status {c.status!r} is not one of {', '.join(STATUSES)}")
    for name in ("since", "until", "started"):
        if not _aware(getattr(c, name)):
            msg = (f"{what}: {name} {getattr(c, name)!r} has no time zone; give aware "
                   "datetimes, e.g. datetime.now(datetime.UTC)")  # fmt: skip
            raise PackageError(msg)
    if config and (c.format != "json" or c.status != "ok"):
        reason = f" ({c.error})" if c.error else ""
        msg = (f"{what}: status {c.status!r}{reason}, format {c.format!r}: every tarball "
               "holds the config as JSON, so nothing can be packed without it; fix the "
               "config collector")  # fmt: skip
        raise PackageError(msg)
    if c.status == "ok" and c.format == "csv" and not c.files:
        msg = (f"{what}: status 'ok' but no file; a collector that wrote nothing gives "
               "an 'empty' collection")  # fmt: skip
        raise PackageError(msg)


def _file_size(c: Collection, path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError as exc:
        raise PackageError(f"collection '{c.key}': cannot read its file {path}: {exc}") from exc


def csv_collections(collection: Collection, max_data_size: int) -> list[Collection]:
    """An ok CSV collection as one collection per part of at most ``max_data_size`` bytes
    (``stages.ingress.splitter``; each part repeats the header and is written beside its
    file, which is left in place). Anything else comes back as it is, ``[collection]``.

    Give ``Packer.max_collection_size`` as ``max_data_size`` for parts that fit in a
    tarball beside the config.
    """
    if collection.format != "csv" or collection.status != "ok":
        return [collection]
    parts = [part for f in collection.files for part in split_csv(f, max_data_size)]
    if parts == collection.files and len(parts) == 1:
        return [collection]
    return [dataclasses.replace(collection, files=[p]) for p in parts]


def _iso(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).isoformat()


def _status_bytes(collections: Sequence[Collection]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(STATUS_HEADER)
    for c in collections:
        writer.writerow([_iso(c.started), _iso(c.since), _iso(c.until), c.file_name, c.status,
                         round(c.elapsed)])  # fmt: skip
    return out.getvalue().encode("utf-8")


def _manifest_bytes(collections: Sequence[Collection], config: Collection) -> bytes:
    versions = {c.file_name: c.version for c in collections if c.status == "ok"}
    versions[CONFIG_FILE] = config.version
    versions[STATUS_FILE] = STATUS_VERSION
    return encode_json(versions)


def _stamp(until: dt.datetime) -> str:
    if not _aware(until):
        raise PackageError(f"until {until!r} has no time zone; give an aware datetime")
    return until.astimezone(dt.UTC).strftime("%Y-%m-%d-%H%M%S%z")


def tarball_path(directory: Path, until: dt.datetime, name_base: str = NAME_BASE) -> Path:
    """The next tarball's path in ``directory``: ``<name_base>-<until>-<index>.tar.gz``,
    the index one past the highest of that ``until`` there (0 when there is none), so it
    counts them, and a tarball removed since never lets a new one take an existing name.
    """
    prefix = f"{name_base}-{_stamp(until)}-"
    taken = [-1]
    for p in directory.glob(f"{glob.escape(prefix)}*{_SUFFIX}"):
        index = p.name[len(prefix) : -len(_SUFFIX)]
        if index.isdigit():
            taken.append(int(index))
    return directory / f"{prefix}{max(taken) + 1}{_SUFFIX}"


def build(
    directory: Path,
    collections: Sequence[Collection],
    config: Collection,
    until: dt.datetime,
    name_base: str = NAME_BASE,
) -> Path:
    """Write ``collections`` and ``config`` as the next tarball in ``directory`` (see the
    module doc for the layout and name) and return its path. It is written under a
    temporary name and renamed when complete."""
    _check(config, config=True)
    keys: set[str] = set()
    for c in collections:
        _check(c)
        if c.key in keys:
            raise PackageError(f"collection '{c.key}' twice in one tarball: one per tarball")
        keys.add(c.key)
        if c.status == "ok" and c.format == "csv" and len(c.files) != 1:
            msg = (f"collection '{c.key}': {len(c.files)} files, and a tarball holds one; "
                   "give one collection per file (csv_collections)")  # fmt: skip
            raise PackageError(msg)
    directory.mkdir(parents=True, exist_ok=True)
    path = tarball_path(directory, until, name_base)
    members: list[tuple[str, bytes | Path]] = []
    for c in collections:
        if c.status == "ok":
            members.append((c.file_name, encode_json(c.data) if c.format == "json" else c.files[0]))
    members.append((CONFIG_FILE, encode_json(config.data)))
    members.append((STATUS_FILE, _status_bytes(collections)))
    members.append((MANIFEST_FILE, _manifest_bytes(collections, config)))
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        _write(tmp, members, int(until.timestamp()))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _write(path: Path, members: list[tuple[str, bytes | Path]], mtime: int) -> None:
    with (
        path.open("wb") as raw,
        # no file name and time 0 in the gzip header: the bytes depend on the members only
        gzip_module.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for name, content in members:
            info = tarfile.TarInfo(f"./{name}")
            info.mtime = mtime
            info.mode = 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if isinstance(content, bytes):
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
            else:
                with content.open("rb") as f:
                    info.size = os.fstat(f.fileno()).st_size
                    tar.addfile(info, f)


def _sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


@dataclass
class _Package:
    group: str
    size: int  # data bytes, config.json's included
    collections: list[Collection] = field(default_factory=list)

    def holds(self, key: str) -> bool:
        return any(c.key == key for c in self.collections)


class Packer:
    """Places collections into packages and builds them into tarballs in ``workdir``
    (see the module doc). ``config`` is the config collection, put into every tarball.

    ``add`` returns what it built (a sliced collection's tarballs), ``finish`` builds and
    returns the rest; each ``Built`` says which collections its tarball holds.
    """

    def __init__(
        self,
        max_data_size: int,
        workdir: Path,
        name_base: str,
        until: dt.datetime,
        config: Collection,
    ) -> None:
        if max_data_size < 1:
            raise ValueError(f"max_data_size should be at least 1 byte, not {max_data_size}")
        _stamp(until)
        _check(config, config=True)
        try:
            self._config_size = len(encode_json(config.data))
        except (TypeError, ValueError) as exc:
            raise PackageError(f"config collection: its data is not JSON: {exc}") from exc
        if self._config_size >= max_data_size:
            msg = (f"config.json alone is {self._config_size} bytes, and max_data_size is "
                   f"{max_data_size}: raise max_data_size or send a smaller config")  # fmt: skip
            raise PackageError(msg)
        self.max_data_size = max_data_size
        self.workdir = Path(workdir)
        self.name_base = name_base
        self.until = until
        self.config = config
        self._packages: list[_Package] = []
        self._finished = False

    @property
    def max_collection_size(self) -> int:
        """The largest collection that fits into a tarball beside config.json."""
        return self.max_data_size - self._config_size

    def add(self, collection: Collection) -> list[Built]:
        """Place ``collection``; returns the tarballs built for it now (a sliced one's).

        An ok CSV collection too large to fit beside config.json, or of several files,
        is cut into parts first (``csv_collections``). An ok JSON collection whose data
        cannot be written as JSON is marked failed, in place, with the reason: it is
        reported in the status file like any other failure.
        """
        if self._finished:
            raise PackageError(f"collection '{collection.key}' added after finish()")
        if collection.key == CONFIG_KEY:
            raise PackageError("the config collection is given to Packer(), not added")
        _check(collection)
        pieces = [collection]
        if collection.status == "ok" and collection.format == "csv":
            files = collection.files
            if len(files) != 1 or _file_size(collection, files[0]) > self.max_collection_size:
                pieces = csv_collections(collection, self.max_collection_size)
        built = []
        for piece in pieces:
            size = self._size(piece)
            if piece.sliced:
                built.append(self._build([piece], self._config_size + size))
            else:
                self._place(piece, size)
        return built

    def finish(self) -> list[Built]:
        """Build every package still open, in the order they were started."""
        self._finished = True
        built = [self._build(p.collections, p.size) for p in self._packages]
        self._packages = []
        return built

    def _size(self, c: Collection) -> int:
        """The bytes ``c`` takes in a tarball (0 unless ok)."""
        if c.status != "ok":
            return 0
        if c.format == "csv":
            return _file_size(c, c.files[0])
        try:
            return len(encode_json(c.data))
        except (TypeError, ValueError) as exc:
            c.status, c.data = "failed", None
            c.error = f"its data cannot be written as JSON: {exc}"
            return 0

    def _place(self, c: Collection, size: int) -> None:
        for p in self._packages:
            if (
                p.group == c.shipping_group
                and not p.holds(c.key)
                and p.size + size <= self.max_data_size
            ):
                p.collections.append(c)
                p.size += size
                return
        self._packages.append(_Package(c.shipping_group, self._config_size + size, [c]))

    def _build(self, collections: list[Collection], data_size: int) -> Built:
        path = build(self.workdir, collections, self.config, self.until, self.name_base)
        extra = len(_status_bytes(collections)) + len(_manifest_bytes(collections, self.config))
        return Built(path, _sha256(path), list(collections), path.stat().st_size,
                     data_size + extra)  # fmt: skip
