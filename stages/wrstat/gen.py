"""Sample wrstat stats files in every era and naming: ``pipeline gen wrstat DIR``.

Each volume gets a tree walked depth first as wrstat walks it: lustre-like areas
(``humgen/projects/...`` with 5-component base directories, ``teams/...`` with 4,
``realdata/mdtN/...`` with one more), groups of very unequal size, users' and projects'
sub-directories, files of every reported type, symlinks, sockets and FIFOs, hard links (the
same inode under two paths, nlink 2), entries with nlink 0, mtimes from days to ten years
before the snapshot (and some after it), atimes between the mtime and the snapshot, and
names with spaces, accents, emoji, tabs, newlines, quotes, backslashes and bytes that are
not UTF-8.

Eras: ``v3`` (base64 paths, 11 columns, ``<date>_<volume>.<a>.<b>.stats.gz``), ``v5.1``
(base64 in the sorted alphabet), ``v5.2`` (Go-quoted paths), ``v6.2`` (quoted, directories
end in "/", ``<date-time>_<mount>/stats.gz``), ``v6.4`` (as 6.2, and a 12th column: the
apparent size). Sizes before 6.2 are capped at the allocated blocks, as wrstat reported
them then.

``--history N`` adds the N days before: the same tree (same paths and inodes), its files 3%
smaller each day back and all its times as many days earlier; ``--churn RATE`` makes those
older snapshots differ as two days of a volume do (``stages.wrstat.churn``).
"""

from __future__ import annotations

import argparse
import binascii
import calendar
import functools
import itertools
import math
import random
import re
import sys
import time
from bisect import bisect_right
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from rich.console import Console
from rich.progress import MofNCompleteColumn, Progress

from pipeline.errors import UsageError
from stages.gz import gzip_module as _gzip
from stages.wrstat.naming import FULLWIDTH_SLASH
from stages.wrstat.sample_accounts import write_identities, write_quotas

if TYPE_CHECKING:
    from stages.wrstat.churn import Churn


@dataclass(frozen=True)
class Era:
    name: str
    encoding: str  # base64, sorted, quoted
    columns: int
    new_naming: bool
    dir_slash: bool
    apparent_sizes: bool


ERAS = {
    "v3": Era("v3", "base64", 11, False, False, False),
    "v5.1": Era("v5.1", "sorted", 11, False, False, False),
    "v5.2": Era("v5.2", "quoted", 11, False, False, False),
    "v6.2": Era("v6.2", "quoted", 11, True, True, True),
    "v6.4": Era("v6.4", "quoted", 12, True, True, True),
}

_STD = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_SORTED = b"+/0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_TO_SORTED = bytes.maketrans(_STD, _SORTED)
_ESC = {9: b"\\t", 10: b"\\n", 13: b"\\r", 7: b"\\a", 8: b"\\b", 12: b"\\f", 11: b"\\v",
        34: b'\\"', 92: b"\\\\"}  # fmt: skip
#: a byte that Go's quoting does not keep as it is: outside printable ASCII, or " or \
_NEEDS_ESCAPE = re.compile(rb"[^\x20\x21\x23-\x5b\x5d-\x7e]")


def go_quote(path: bytes) -> bytes:
    """``path`` as Go's ``strconv.Quote`` writes it (printable UTF-8 kept as it is)."""
    if _NEEDS_ESCAPE.search(path) is None:
        return b'"' + path + b'"'
    out = bytearray(b'"')
    text = path.decode("utf-8", "surrogateescape")
    for ch in text:
        o = ord(ch)
        if 0xDC80 <= o <= 0xDCFF:
            out += b"\\x%02x" % (o - 0xDC00)
        elif o < 128 and o in _ESC:
            out += _ESC[o]
        elif o < 32 or o == 127:
            out += b"\\x%02x" % o
        elif o < 128 or ch.isprintable():
            out += ch.encode()
        elif o < 0x10000:
            out += b"\\u%04x" % o
        else:
            out += b"\\U%08x" % o
    return bytes(out + b'"')


def _base64(path: bytes) -> bytes:
    return binascii.b2a_base64(path, newline=False)


def _sorted_base64(path: bytes) -> bytes:
    return binascii.b2a_base64(path, newline=False).translate(_TO_SORTED)


_ENCODERS: dict[str, Callable[[bytes], bytes]] = {
    "quoted": go_quote,
    "base64": _base64,
    "sorted": _sorted_base64,
}


def encode_path(path: bytes, era: Era) -> bytes:
    return _ENCODERS[era.encoding](path)


_EXTENSIONS = [  # (suffix, weight, typical size in bytes)
    (".bam", 8, 4e9), (".cram", 6, 2e9), (".sam", 1, 8e9), (".vcf", 2, 2e8),
    (".vcf.gz", 4, 5e8), (".fastq", 1, 5e9), (".fq.gz", 3, 2e9), (".fastq.gz", 4, 3e9),
    (".bed", 2, 1e6), (".ped", 1, 1e5), (".txt", 10, 2e4), (".log", 8, 1e5), (".py", 4, 8e3),
    (".tsv", 5, 2e6), (".BAM", 1, 4e9), ("", 6, 5e4),
]  # fmt: skip
_ODD_NAMES = [
    "with space.txt",
    "caf\u00e9.vcf",
    "emoji-\U0001f600.bam",
    "tab\there.txt",
    "new\nline.log",
    'quote"d.txt',
    "back\\slash.bed",
    "nbsp\u00a0name.txt",
]
_ODD_BYTES = [b"latin1-\xe9t\xe9.txt", b"bad-\x80\xff.bam"]
_EXT_CUM = list(itertools.accumulate(w for _, w, _ in _EXTENSIONS))
_KIND_CUM = list(itertools.accumulate([970, 25, 3, 2]))
# The hot draws below are ``rng.choices(population, cum_weights=...)[0]`` written out:
# ``random() * total`` bisected in the cumulative weights, the very same draw, without
# building a one-element list per file.
_EXT_TOTAL, _EXT_HI = _EXT_CUM[-1] + 0.0, len(_EXT_CUM) - 1
_EXT_BYTES = [(ext.encode(), math.log(typical)) for ext, _, typical in _EXTENSIONS]
_LOG_TYPICAL = math.log(1e5)  # odd names' files
_KINDS = "flsF"
_KIND_TOTAL, _KIND_HI = _KIND_CUM[-1] + 0.0, len(_KIND_CUM) - 1
_WORDS = ["align", "calls", "raw", "qc", "ref", "tmp", "batch", "sample", "run", "plots", "lanes",
          "merged", "final", "old", "scratch", "work"]  # fmt: skip
_WORD_BYTES = [w.encode() for w in _WORDS]


@dataclass(slots=True)
class Entry:
    path: bytes
    type: str
    size: int
    apparent: int
    uid: int
    gid: int
    atime: int
    mtime: int
    ctime: int
    inode: int
    nlink: int
    dev: int
    #: a file's (size, apparent size) in the newest snapshot, where this one is older and
    #: its files smaller: what the file has if it was touched since (None otherwise)
    newest: tuple[int, int] | None = None


class Volume:
    """One volume's tree, walked depth first."""

    def __init__(
        self, name: str, lines: int, snapshot: int, rng: random.Random, scale: float = 1.0
    ) -> None:
        self.name = name
        #: files' sizes are multiplied by this (older snapshots of a growing tree)
        self.scale = scale
        self.mount = f"/lustre/{name}".encode()
        self.target = lines
        self.snapshot = snapshot
        self.rng = rng
        self.inode = 1000 + rng.randrange(10_000)
        self.dev = 64768 + rng.randrange(100)
        self.emitted = 0
        self.hardlinks: list[Entry] = []
        # groups of very unequal size: a few big ones, many small ones
        self.groups = [(1000 + i * 7, 1.0 / (i + 1) ** 1.3) for i in range(40)]
        self.users = [20000 + i for i in range(120)]
        #: the base directory being walked (None: above them all)
        self.base: bytes | None = None
        #: the walk has reached the second names of the hard-linked files, at its end
        self.second_names = False

    def _entry(
        self, path: bytes, kind: str, uid: int, gid: int, size: int = 0, full: int = 0
    ) -> Entry:
        """``size``: a file's apparent size in this snapshot, ``full`` in the newest."""
        rng = self.rng
        self.inode += 1
        roll = rng.random()
        mtime = self.snapshot - int(-math.log(1.0 - roll) * 200 * 86400)  # ~200 days on average
        if roll < 0.12:  # data kept for years: up to ten
            mtime = self.snapshot - int(roll / 0.12 * 10 * 365 * 86400)
        # last read some time between its last change and the snapshot
        atime = mtime + int((self.snapshot - mtime) * (roll * 7919 % 1.0))
        if roll > 0.998:
            mtime = self.snapshot + int(roll * 1e6) % 400 * 86400  # a clock in the future
            atime = mtime + int(roll * 86400)
        apparent = size
        newest = None
        if kind == "d":
            size = apparent = 4096
        elif kind == "l":
            apparent = len(path) % 60 + 5
            size = apparent
        elif kind == "f":
            apparent = size
            sparse = rng.random() < 0.05
            if sparse:
                size = size // 4
            if self.scale != 1.0:
                newest = (full // 4 if sparse else full, full)
        nlink = 2 if kind == "d" else 1
        if kind == "f" and rng.random() < 0.001:
            nlink = 0
        return Entry(path, kind, size, apparent, uid, gid, atime, mtime,
                     mtime + int(roll * 3600), self.inode, nlink, self.dev, newest)  # fmt: skip

    def _file(self, folder: bytes, uid: int, gid: int, i: int) -> Entry:
        rng = self.rng
        roll = rng.random()
        log_typical = _LOG_TYPICAL
        if roll < 0.003:
            name = rng.choice(_ODD_NAMES).encode()
        elif roll < 0.004:
            name = rng.choice(_ODD_BYTES)
        else:
            pick = bisect_right(_EXT_CUM, rng.random() * _EXT_TOTAL, 0, _EXT_HI)
            ext, log_typical = _EXT_BYTES[pick]
            name = b"%s_%05d%s" % (rng.choice(_WORD_BYTES), i, ext)
        path = folder + b"/" + name
        kind = _KINDS[bisect_right(_KIND_CUM, rng.random() * _KIND_TOTAL, 0, _KIND_HI)]
        size = full = 0
        if kind == "f":
            raw = math.exp(rng.gauss(log_typical, 1.2))
            size, full = int(raw * self.scale), int(raw)
        e = self._entry(path, kind, uid, gid, size, full)
        if kind == "f" and rng.random() < 0.01:  # a hard link, met again later
            e.nlink = 2
            self.hardlinks.append(e)
        return e

    def walk(self) -> Iterator[Entry]:
        """Entries in depth-first walk order, about ``target`` of them."""
        rng = self.rng
        root_uid, root_gid = 0, 0
        yield self._entry(self.mount, "d", root_uid, root_gid)
        areas = [
            (b"humgen", b"projects"), (b"hgi", b"projects"), (b"tol", b"teams"), (b"teams", None),
            (b"realdata/mdt0", b"projects"), (b"realdata/mdt1", b"projects"),
        ]  # fmt: skip
        weights = [g[1] for g in self.groups]
        bases: list[tuple[bytes, int]] = []
        for area, kind in areas:
            n_bases = 8 if kind else 12
            for b in range(n_bases):
                gid = rng.choices(self.groups, weights=weights)[0][0]
                label = f"{'team' if kind is None else 'p'}{rng.randrange(1000):03d}-{b}".encode()
                base = self.mount + b"/" + area + b"/" + (kind + b"/" if kind else b"") + label
                bases.append((base, gid))
        shares = [1.0 / (k + 1) ** 1.2 for k in range(len(bases))]  # very unequal sizes
        rng.shuffle(shares)
        total = sum(shares)
        emitted_dirs: set[bytes] = set()
        for (base, gid), share in zip(bases, shares, strict=True):
            budget = int(self.target * share / total)
            # the directories above the base directory: outside any base directory
            parts = base[len(self.mount) + 1 :].split(b"/")
            for k in range(1, len(parts)):
                above = self.mount + b"/" + b"/".join(parts[:k])
                if above not in emitted_dirs:
                    emitted_dirs.add(above)
                    self.base = None
                    yield self._entry(above, "d", 0, gid)
            yield from self._base(base, gid, budget)
        self.second_names = True
        for e in self.hardlinks:  # the second name of each hard-linked file
            yield Entry(e.path + b".link", e.type, e.size, e.apparent, e.uid, e.gid, e.atime,
                        e.mtime, e.ctime, e.inode, 2, e.dev, e.newest)  # fmt: skip

    def _base(self, base: bytes, gid: int, budget: int) -> Iterator[Entry]:
        rng = self.rng
        self.base = base
        members = rng.sample(self.users, 4)
        yield self._entry(base, "d", members[0], gid)
        count = 1
        subs = [b"users/" + str(u).encode() for u in members[:3]]
        subs += [b"projects/" + rng.choice(_WORDS).encode(), b"data", b"results"]
        subs_parts = [sub.split(b"/") for sub in subs]
        i = 0
        while count < budget:
            for parts in subs_parts:
                if count >= budget:
                    break
                uid = rng.choice(members)
                folder = base
                for part in parts:
                    folder = folder + b"/" + part
                    if rng.random() < 0.3 or part == parts[0]:
                        yield self._entry(folder, "d", uid, gid)
                        count += 1
                depth = rng.randrange(0, 3)
                for _ in range(depth):
                    folder = folder + b"/" + rng.choice(_WORDS).encode() + str(i).encode()
                    yield self._entry(folder, "d", uid, gid)
                    count += 1
                for _ in range(min(budget - count, int(rng.expovariate(1 / 40)) + 1)):
                    i += 1
                    g = gid if rng.random() < 0.97 else rng.choice(self.groups)[0]
                    yield self._file(folder, uid, g, i)
                    count += 1
            if rng.random() < 0.3:  # a file directly in the base directory
                i += 1
                yield self._file(base, members[0], gid, i)
                count += 1


def reported_size(e: Entry, era: Era) -> int:
    """Column 2 as this era wrote it."""
    if not era.apparent_sizes and e.type == "l":
        return 0  # symlinks came out as 0 before wrstat 6.2
    return e.size if not era.apparent_sizes else e.apparent


def line_writer(era: Era) -> Callable[[Entry], bytes]:
    """The function that writes an entry's line as this era did."""
    encode = _ENCODERS[era.encoding]
    template = b"\t".join([b"%s", *[b"%d"] * 6, b"%s", *[b"%d"] * (era.columns - 8)]) + b"\n"
    dir_slash, twelve = era.dir_slash, era.columns == 12

    def line(e: Entry) -> bytes:
        kind = e.type
        path = encode(e.path + b"/" if dir_slash and kind == "d" else e.path)
        size = reported_size(e, era)
        if twelve:
            return template % (path, size, e.uid, e.gid, e.atime, e.mtime, e.ctime,
                               kind.encode(), e.inode, e.nlink, e.dev, e.apparent)  # fmt: skip
        return template % (path, size, e.uid, e.gid, e.atime, e.mtime, e.ctime, kind.encode(),
                           e.inode, e.nlink, e.dev)  # fmt: skip

    return line


def file_path(folder: Path, volume: str, era: Era, snapshot: int) -> Path:
    if era.new_naming:
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(snapshot))
        mount = f"/lustre/{volume}".replace("/", FULLWIDTH_SLASH)
        return folder / f"{stamp}_{mount}" / "stats.gz"
    stamp = time.strftime("%Y%m%d", time.gmtime(snapshot))
    return folder / f"{stamp}_{volume}.a1b2c3.d4e5f6.stats.gz"


def write_volume(
    folder: Path,
    volume: str,
    era: Era,
    lines: int,
    snapshot: int,
    seed: int,
    advance: Callable[[int], None] = lambda n: None,
    usage: dict[tuple[str, int, bytes | None], int] | None = None,
    uids: set[int] | None = None,
    scale: float = 1.0,
    churn: Churn | None = None,
) -> tuple[Path, int]:
    """Write one stats file; returns its path and line count. ``advance`` is told of
    every batch of lines written; ``usage`` gets the bytes each gid uses in each of the
    generated base directories (size // nlink, as the reports count them) and ``uids``
    every uid seen. ``scale`` multiplies the files' sizes; ``churn`` changes an older
    snapshot's entries."""
    path = file_path(folder, volume, era, snapshot)
    path.parent.mkdir(parents=True, exist_ok=True)
    # With churn, an older snapshot is the newest's tree as it was then: what did not change
    # since has the newest's times, so a diff sees it grown and nothing else. Without, every
    # time moves back with the snapshot, as files written before --churn existed have them.
    clock = snapshot if churn is None else snapshot + churn.days * 86400
    vol = Volume(volume, lines, clock, random.Random(f"{seed}-{volume}"), scale)
    entries = vol.walk() if churn is None else churn.apply(vol)
    write = line_writer(era)
    n = 0
    f: BinaryIO
    with _gzip.open(path, "wb", compresslevel=1) as f:
        buf: list[bytes] = []
        for entry in entries:
            buf.append(write(entry))
            if usage is not None:
                key = (volume, entry.gid, vol.base)
                usage[key] = usage.get(key, 0) + reported_size(entry, era) // max(1, entry.nlink)
            if uids is not None:
                uids.add(entry.uid)
            if len(buf) >= 20000:
                f.write(b"".join(buf))
                advance(len(buf))
                n += len(buf)
                buf.clear()
        f.write(b"".join(buf))
        advance(len(buf))
        n += len(buf)
    return path, n


#: how much smaller the files of each older daily snapshot are: the groups grow steadily,
#: so forecasts have a trend
DAILY_GROWTH = 0.03

DEFAULT_VOLUMES = "scratch117=v3,scratch118=v5.1,scratch119=v5.2,scratch123=v6.2,scratch124=v6.4"


def _run(args: argparse.Namespace) -> int:
    from stages.wrstat.churn import Churn  # noqa: PLC0415 - it builds on this module

    folder = Path(args.dir)
    if args.date:
        try:
            day = calendar.timegm(time.strptime(args.date, "%Y%m%d"))
        except ValueError:
            raise UsageError(f"--date {args.date!r} is not a date like 20261101") from None
    else:
        day = int(time.time()) // 86400 * 86400
    if args.churn and args.history < 1:
        msg = (
            f"--churn {args.churn} changes the older snapshots, and --history {args.history} "
            "writes none: add --history 1 (or more)"
        )
        raise UsageError(msg)
    plan: list[tuple[str, Era]] = []
    for spec in args.volumes.split(","):
        volume, _, era = spec.partition("=")
        if not volume or "/" in volume or era not in ERAS:
            msg = (
                f"--volumes: {spec!r} is not VOLUME=ERA (eras: {', '.join(ERAS)}), "
                "e.g. scratch123=v6.4"
            )
            raise UsageError(msg)
        plan.append((volume, ERAS[era]))
    total = 0
    usage: dict[tuple[str, int, bytes | None], int] = {}
    uids: set[int] = set()
    # a bar on a terminal; lines of text otherwise
    columns = (*Progress.get_default_columns(), MofNCompleteColumn())
    console = Console(stderr=True)
    with Progress(*columns, console=console, disable=not sys.stderr.isatty()) as bar:
        for k in range(args.history, -1, -1):  # older snapshots first
            for volume, era in plan:
                # old names carry only the day (00:00 UTC); new ones a time of day as well
                when = day - k * 86400 + (12 * 3600 if era.new_naming else 0)
                task = bar.add_task(f"{volume} ({era.name})", total=args.lines)
                newest = k == 0
                scale = (1 - DAILY_GROWTH) ** k  # the same tree, its files smaller
                churn = (
                    None if newest or not args.churn else Churn(args.churn, args.seed, volume, k)
                )
                path, n = write_volume(folder, volume, era, args.lines, when, args.seed,
                                       functools.partial(bar.advance, task),
                                       usage if newest else None, uids, scale, churn)  # fmt: skip
                bar.update(task, total=n, completed=n)
                total += n
                print(f"{path}: {n:,} lines ({era.name})")
    print(f"wrote {total:,} lines in {len(plan) * (args.history + 1)} files to {folder}")
    names = write_identities(folder, {gid for _, gid, _ in usage}, uids)
    largest: dict[tuple[str, int], int] = {}  # each group's biggest base directory sets its quota
    for (volume, gid, _), used in usage.items():
        largest[(volume, gid)] = max(largest.get((volume, gid), 0), used)
    quotas = write_quotas(folder, largest, args.seed)
    print(f"{names}: group names, PIs and user names (IDENTITIES={names})")
    print(f"{quotas}: group quotas per volume (QUOTA_FILE={quotas})")
    return 0


def add_generator(kinds: Any) -> None:
    from stages.wrstat.churn import MAX_CHURN, churn_rate  # noqa: PLC0415 - builds on this

    p = kinds.add_parser(
        "wrstat",
        help="wrstat stats files of every era",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  pipeline gen wrstat sample-data/wrstat\n"
        "  pipeline gen wrstat big --lines 10000000 --volumes scratch117=v3 --date 20261101\n"
        "  pipeline gen wrstat history --history 4   # and the four days before\n"
        "  pipeline gen wrstat pair --lines 1000000 --history 1 --churn 0.02"
        "   # two snapshots to diff",
    )
    p.add_argument("dir", help="folder to write the stats files into")
    p.add_argument("--lines", type=int, default=50000, help="lines per file (default 50000)")
    p.add_argument(
        "--volumes",
        default=DEFAULT_VOLUMES,
        help=f"volume=era pairs, comma separated (default {DEFAULT_VOLUMES})",
    )
    p.add_argument("--date", help="snapshot date YYYYMMDD (default: today, UTC)")
    p.add_argument(
        "--history",
        type=int,
        default=0,
        help="also write this many older daily snapshots of each volume (the same tree, "
        f"its files {DAILY_GROWTH * 100:.0f}%% smaller each day back)",  # %%: argparse formats
    )
    p.add_argument(
        "--churn",
        type=churn_rate,
        default=0.0,
        metavar="RATE",
        help="in the older snapshots, change this share of the entries (0 to "
        f"{MAX_CHURN}; default 0): created, moved, touched, type changed or deleted since, "
        "a fifth each, picked by a hash so the newest snapshot stays the same",
    )
    p.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    p.set_defaults(handler=_run)
