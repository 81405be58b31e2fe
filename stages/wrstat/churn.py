"""How an older generated snapshot differs from the newest, entry by entry (``pipeline gen
wrstat --history N --churn RATE``).

``--churn RATE`` makes the older snapshots differ from the newest as a file-level diff of two
days would find them to: an entry that did not change has the newest's times there, so it
differs by its size alone (grown, for a file), and each entry below a base directory (not
the base directory itself) changes with probability RATE, in one of five equally likely
ways (RATE/5 each), left as it is where that way cannot apply to it:

- created since: a file or symlink is missing from the older snapshot (a hard-linked file
  under both its names);
- moved since: a file, symlink, socket or FIFO has another name there, ``.prev`` before its
  extension (``calls_00012.prev.vcf.gz``); the second name of a hard link (``NAME.link``)
  moves by a draw of its own, so one name of an inode can move while the other stays;
- touched: any entry has the newest snapshot's size there and an mtime 1 to 30 days earlier;
- type changed: the inode of a file was a symlink there, or that of a symlink a file (nlink 1
  only), which a diff reports as a delete and a create;
- deleted since: the older snapshot has one more file right after the entry in the walk,
  beside it (inside it, for a directory), with an inode above 2**40 that no newest snapshot
  uses.

The choice is a hash of (seed, volume, inode, days back), not the walk's random stream, so
the newest snapshot is the same with or without ``--churn`` and the walk stays depth first.
An entry the newest shows changed in the last days keeps that mtime in an older snapshot
unless picked, after that snapshot's time, as a clock running ahead would put it.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import zlib
from collections.abc import Iterator

from stages.wrstat.gen import Entry, Volume

#: the most ``--churn`` takes: past a fifth of the entries changed a day, a pair of snapshots
#: no longer looks like two days of one volume
MAX_CHURN = 0.2
#: files that only an older snapshot holds (deleted since) have inodes from here up, far
#: above any the newest snapshot uses
DELETED_INODES = 2**40
# the ways an entry can differ, in the order a hash picks them
_CREATED, _MOVED, _TOUCHED, _RETYPED, _DELETED = range(5)


def _renamed(path: bytes) -> bytes:
    """``path`` with ``.prev`` before its name's extension: where it was before a move."""
    start = path.rfind(b"/") + 2  # a leading dot starts no extension
    dot = path.find(b".", start)
    return path + b".prev" if dot < 0 else path[:dot] + b".prev" + path[dot:]


def _some_size(detail: int) -> int:
    """A file size from 400 B to 500 MB, log-uniform, from a hash's bits."""
    return int(math.exp(6 + (detail >> 8) % 1400 / 100))


class Churn:
    """How the snapshot ``days`` back differs from the newest beyond its files' sizes (the
    module's docstring lists the ways), entry by entry.

    Which entries change, and how, is a CRC-32 of ``"seed/volume/days/inode"`` (a second
    name of a hard link adds ``.link``): cheap enough for every one of ten million lines,
    spread evenly enough for thresholds, and independent of the walk's random stream, which
    stays as it is. A picked entry's CRC, below ``rate * 2**32``, also says which way it
    changes; a second CRC (of the same key under another prefix) gives the details.
    """

    def __init__(self, rate: float, seed: int, volume: str, days: int) -> None:
        self.days = days
        self.limit = int(rate * 2**32)
        self.prefix = zlib.crc32(f"{seed}/{volume}/{days}/".encode())
        self.detail_prefix = zlib.crc32(f"{seed}/{volume}/{days}/detail/".encode())

    def apply(self, vol: Volume) -> Iterator[Entry]:
        """``vol``'s walk as the older snapshot holds it."""
        crc, prefix, limit = zlib.crc32, self.prefix, self.limit
        for e in vol.walk():
            base = vol.base
            if base is None or e.path == base:  # the root, what is above the base dirs, them
                yield e
            elif vol.second_names:
                yield from self._second_name(e, vol)
            else:
                key = b"%d" % e.inode
                h = crc(key, prefix)
                if h >= limit:
                    yield e
                else:
                    yield from self._changed(e, vol, h * 5 // limit, key)

    def _changed(self, e: Entry, vol: Volume, way: int, key: bytes) -> Iterator[Entry]:
        if way == _CREATED:
            if e.type not in ("f", "l"):  # a directory stays: what is below it needs it
                yield e
        elif way == _MOVED:
            yield e if e.type == "d" else dataclasses.replace(e, path=_renamed(e.path))
        elif way == _TOUCHED:
            yield self._touched(e, key)
        elif way == _RETYPED:
            yield self._retyped(e, key) if e.type in ("f", "l") and e.nlink == 1 else e
        else:
            yield e
            yield self._deleted(e, vol, key, second=0)

    def _second_name(self, e: Entry, vol: Volume) -> Iterator[Entry]:
        """A hard link's second name: the inode's own change first (both names of a file
        created since are missing; both show a touch), then the name's (a move, a
        neighbour deleted since)."""
        crc, limit = zlib.crc32, self.limit
        key = b"%d" % e.inode
        h = crc(key, self.prefix)
        if h < limit:
            way = h * 5 // limit
            if way == _CREATED:
                return
            if way == _TOUCHED:
                e = self._touched(e, key)
        key += b".link"
        h = crc(key, self.prefix)
        way = h * 5 // limit if h < limit else -1
        if way == _MOVED:
            e = dataclasses.replace(e, path=_renamed(e.path))
        yield e
        if way == _DELETED:
            yield self._deleted(e, vol, key, second=1)

    def _touched(self, e: Entry, key: bytes) -> Entry:
        """``e`` before its last change: the newest size, the times 1 to 30 days earlier."""
        back = (1 + zlib.crc32(key, self.detail_prefix) % 30) * 86400
        size, apparent = e.newest if e.newest is not None else (e.size, e.apparent)
        return dataclasses.replace(e, size=size, apparent=apparent, atime=e.atime - back,
                                   mtime=e.mtime - back, ctime=e.ctime - back)  # fmt: skip

    def _retyped(self, e: Entry, key: bytes) -> Entry:
        """What ``e``'s inode was before it was freed and reused: a symlink for a file, a
        file for a symlink."""
        detail = zlib.crc32(key, self.detail_prefix)
        back = (1 + detail % 30) * 86400
        if e.type == "f":
            kind, size = "l", len(e.path) % 60 + 5
        else:
            kind, size = "f", _some_size(detail)
        return Entry(e.path, kind, size, size, e.uid, e.gid, e.atime - back, e.mtime - back,
                     e.ctime - back, e.inode, 1, e.dev)  # fmt: skip

    def _deleted(self, e: Entry, vol: Volume, key: bytes, second: int) -> Entry:
        """A file beside ``e`` (in it, for a directory) that was deleted since."""
        detail = zlib.crc32(key, self.detail_prefix)
        path = e.path + b"/partial.tmp" if e.type == "d" else e.path + b".tmp"
        size = _some_size(detail)
        # before the older snapshot (``vol.snapshot`` is the newest's)
        mtime = vol.snapshot - (self.days + 1 + detail % 30) * 86400 - (detail >> 5) % 86400
        # one inode per (days back, inode, name of it): never the newest's, never reused
        inode = DELETED_INODES + (self.days << 33) + (e.inode << 1) + second
        return Entry(path, "f", size, size, e.uid, e.gid, mtime, mtime, mtime, inode, 1, e.dev)


def churn_rate(text: str) -> float:
    """``--churn``'s value: a share of the entries, 0 to ``MAX_CHURN``."""
    try:
        rate = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a number: give a share of the entries, e.g. 0.02"
        ) from None
    if not 0 <= rate <= MAX_CHURN:  # NaN fails this too
        raise argparse.ArgumentTypeError(
            f"{text} is out of range: give a share of the entries from 0 to {MAX_CHURN}, "
            "e.g. 0.02 (2% of them change each day)"
        )
    return rate
