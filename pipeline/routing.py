"""How a stage's input is spread over its replicas.

``round-robin`` (the default) hands each batch to whichever replica has credit, ``broadcast``
gives every replica every batch, and ``key`` sends every record with the same key to the same
replica. Keys do not map to replicas directly: they hash to a fixed number of *virtual
partitions*, and the supervisor hands out an owner table (partition -> replica index). When a
stage is scaled only the table changes, so ownership of a key moves with its partition and no
key is ever split between two owners.

The hash is stable across processes and hosts (never Python's salted ``hash()``): integers,
floats and booleans go through the 64-bit murmur3 finaliser, text and bytes through CRC-32.
A key gives the same partition in a dict record and in a numpy column, so the two may be mixed.

>>> partition_of(42, 128) == int(partitions_of(np.array([42]), 128)[0])
True
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.codec import pack
from pipeline.columns import Columns
from pipeline.errors import PipelineError

ROUND_ROBIN = "round-robin"
BROADCAST = "broadcast"
KEY = "key"

DEFAULT_PARTITIONS = 128
_MASK = (1 << 64) - 1


class KeyRouteError(PipelineError):
    """A record cannot be routed by key: the field is missing or the item has no fields."""


@dataclass(frozen=True)
class Route:
    """How input is spread over the replicas of one stage."""

    kind: str = ROUND_ROBIN  # round-robin, broadcast or key
    field: str | int | None = None
    partitions: int = DEFAULT_PARTITIONS

    def describe(self) -> str:
        if self.kind == KEY:
            return f"key {self.field!r} ({self.partitions} partitions)"
        return self.kind


def default_owners(partitions: int, replicas: int) -> list[int]:
    """The initial owner table: partition ``p`` belongs to replica ``p % replicas``."""
    return [p % replicas for p in range(partitions)]


def _fmix64(k: int) -> int:
    k ^= k >> 33
    k = (k * 0xFF51AFD7ED558CCD) & _MASK
    k ^= k >> 33
    k = (k * 0xC4CEB9FE1A85EC53) & _MASK
    return k ^ (k >> 33)


def _fmix64_array(k: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    k = k ^ (k >> np.uint64(33))
    k = k * np.uint64(0xFF51AFD7ED558CCD)
    k = k ^ (k >> np.uint64(33))
    k = k * np.uint64(0xC4CEB9FE1A85EC53)
    out: np.ndarray[Any, Any] = k ^ (k >> np.uint64(33))
    return out


def key_hash(value: Any) -> int:
    """The stable 64-bit hash of one key value."""
    if isinstance(value, bool | int):
        return _fmix64(int(value) & _MASK)
    if isinstance(value, float):
        return _fmix64(int.from_bytes(struct.pack("<d", value), "little"))
    if isinstance(value, str):
        return zlib.crc32(value.encode("utf-8", "surrogatepass"))
    if isinstance(value, bytes | bytearray | memoryview):
        return zlib.crc32(value)
    if isinstance(value, np.generic):
        return key_hash(value.item())
    return zlib.crc32(pack(value))


def partition_of(value: Any, partitions: int) -> int:
    return key_hash(value) % partitions


def partitions_of(keys: np.ndarray[Any, Any], partitions: int) -> np.ndarray[Any, Any]:
    """Vectorised ``partition_of`` over a 1-D array of keys."""
    kind = keys.dtype.kind
    if kind in "iu":
        h = _fmix64_array(keys.astype(np.int64 if kind == "i" else np.uint64).view(np.uint64))
    elif kind == "b":
        h = _fmix64_array(keys.astype(np.uint64))
    elif kind == "f":
        h = _fmix64_array(keys.astype(np.float64).view(np.uint64))
    else:
        h = np.fromiter((key_hash(k) for k in keys.tolist()), dtype=np.uint64, count=len(keys))
    parts: np.ndarray[Any, Any] = (h % np.uint64(partitions)).astype(np.intp)
    return parts


def record_key(item: Any, field: str | int) -> Any:
    try:
        return item[field]
    except (KeyError, IndexError, TypeError):
        what = type(item).__name__
        msg = f"cannot route by key {field!r}: a {what} item has no field {field!r}"
        if isinstance(item, dict):
            msg += f" (fields: {', '.join(map(str, item)) or 'none'})"
        raise KeyRouteError(msg) from None


def split_by_owner(
    items: Sequence[Any], field: str | int, owners: np.ndarray[Any, Any]
) -> dict[int, list[Any]]:
    """Items grouped by the replica index that owns their key; ``Columns`` are split by row."""
    partitions = len(owners)
    out: dict[int, list[Any]] = {}
    for item in items:
        if isinstance(item, Columns):
            if len(item) == 0:
                continue
            keys = item[field] if isinstance(field, str) else None
            if keys is None:
                msg = f"cannot route Columns by a positional key {field!r}; name a column"
                raise KeyRouteError(msg)
            owner = owners[partitions_of(keys, partitions)]
            present = np.unique(owner)
            if len(present) == 1:
                out.setdefault(int(present[0]), []).append(item)
                continue
            for o in present.tolist():
                out.setdefault(o, []).append(item.select(owner == o))
        else:
            o = int(owners[key_hash(record_key(item, field)) % partitions])
            out.setdefault(o, []).append(item)
    return out
