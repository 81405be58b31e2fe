"""Compiled tallies: every parsed line added to its group, directory and user rows.

For each accepted line: its base directory (by the rules, or by a basedirs file), the
sub-directory under it (one component; two under ``users/`` and ``projects/``), its usage
(``size // nlink``, nlink 0 counted as 1), its file type if it is a regular file, and its
mtime capped at the snapshot time, and the wrstat age classes of its mtime and atime; then
one add to its (source, gid, base, sub) row and one to its (source, uid, gid) row (which
also holds its age profile), where the source is the stats file the line came from (one
volume's snapshot). Paths are compared as bytes, by whole components.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

from pipeline import Columns
from stages.wrstat import bytescan as B
from stages.wrstat.basedirs import Listed, Rules
from stages.wrstat.escape import go_escape
from stages.wrstat.layout import (
    AGE_EDGES,
    AGE_WIDTH,
    AGES0,
    BASE64,
    DOT,
    FILE_TYPES,
    FILES,
    INT64_MIN,
    N_AGES,
    NEWEST,
    OK,
    OTHER,
    OUTSIDE,
    TYPE0,
    USAGE,
    reason,
)
from stages.wrstat.lines import KINDS, LUTS, TYPE_OK, decode_path, line_end, numbers, path_status
from stages.wrstat.parse import SAMPLE, compiling_notice, count_lines
from stages.wrstat.parse import warm as warm_parser
from stages.wrstat.tables import Rows, Strings, intern, row_of, same

#: a path is cut at most this deep for base and sub-directories
MAX_DEPTH = 32

_F = 102  # 'f'
_D = 100  # 'd'
_SLASH = 47


@njit(cache=True, nogil=True)
def _lower(c):  # type: ignore[no-untyped-def]
    return c + 32 if 65 <= c <= 90 else c


_BAM = np.frombuffer(b".bam", np.uint8)
_CRAM = np.frombuffer(b".cram", np.uint8)
_SAM = np.frombuffer(b".sam", np.uint8)
_VCF = np.frombuffer(b".vcf", np.uint8)
_VCF_GZ = np.frombuffer(b".vcf.gz", np.uint8)
_FASTQ = np.frombuffer(b".fastq", np.uint8)
_FQ = np.frombuffer(b".fq", np.uint8)
_FASTQ_GZ = np.frombuffer(b".fastq.gz", np.uint8)
_FQ_GZ = np.frombuffer(b".fq.gz", np.uint8)
_BED = np.frombuffer(b".bed", np.uint8)
_PED = np.frombuffer(b".ped", np.uint8)


@njit(cache=True, nogil=True)
def _endswith(data, s, e, suffix):  # type: ignore[no-untyped-def]
    n = len(suffix)
    if e - s < n:
        return False
    for k in range(n):
        if _lower(data[e - n + k]) != suffix[k]:
            return False
    return True


@njit(cache=True, nogil=True)
def file_type(data, s, e):  # type: ignore[no-untyped-def]
    """The file-type column of a regular file's path, by its name's ending (any case):
    bam, cram, sam, vcf, vcf.gz, fastq (or fq), fastq.gz (or fq.gz), bed or ped, other."""
    if e <= s:
        return OTHER
    last = _lower(data[e - 1])
    if last == 109:  # m
        if _endswith(data, s, e, _BAM):
            return 0
        if _endswith(data, s, e, _CRAM):
            return 1
        if _endswith(data, s, e, _SAM):
            return 2
    elif last == 102:  # f
        if _endswith(data, s, e, _VCF):
            return 3
    elif last == 122:  # z
        if _endswith(data, s, e, _VCF_GZ):
            return 4
        if _endswith(data, s, e, _FASTQ_GZ) or _endswith(data, s, e, _FQ_GZ):
            return 6
    elif last == 113:  # q
        if _endswith(data, s, e, _FASTQ) or _endswith(data, s, e, _FQ):
            return 5
    elif last == 100:  # d
        if _endswith(data, s, e, _BED) or _endswith(data, s, e, _PED):
            return 7
    return OTHER


@njit(cache=True, nogil=True, inline="always")
def _slashes(path, n, common, pos, prev_count):  # type: ignore[no-untyped-def]
    """Slash positions of ``path[:n]`` into ``pos`` (the first ``len(pos)``); the slashes
    of the first ``common`` bytes are the previous path's, already in ``pos`` (it had
    ``prev_count``). Returns the number of slashes."""
    k = 0
    room = len(pos)
    if common > 0:
        kept = min(prev_count, room)
        while k < kept and pos[k] < common:
            k += 1
        if k == room and prev_count > room:
            k = 0  # a very deep path: count again from the start
            common = 0
    i = B.find(path, common, n, _SLASH)
    while i < n:
        if k < room:
            pos[k] = i
        k += 1
        i = B.find(path, i + 1, n, _SLASH)
    return k


@njit(cache=True, nogil=True, inline="always")
def _age_class(age):  # type: ignore[no-untyped-def]
    """The wrstat age class of an age in seconds (a class holds its lower edge)."""
    c = 0
    for edge in AGE_EDGES:
        if age < edge:
            break
        c += 1
    return c


@njit(cache=True, nogil=True, inline="always")
def _cut(pos, comps, e, k):  # type: ignore[no-untyped-def]
    """End of the depth-``k`` prefix of a path with ``comps`` components ending at ``e``."""
    return e if comps <= k else pos[k]


#: int64s of scratch space a scan needs
SCRATCH = 26 + MAX_DEPTH + 2

#: a decision not made yet (the scan stops for it)
UNDECIDED = -2


@njit(cache=True, nogil=True, inline="always")
def _interned(data, c, last, seq, common, pool, starts, hashes, slots, state):  # type: ignore[no-untyped-def]
    """Intern ``data[:c]``, reusing ``last`` = [length, id, seq] when it is the same bytes:
    known at once when ``last`` is the previous path's (``seq - 1``) and the two paths
    share ``common`` >= ``c`` bytes, else by comparing with the interned copy."""
    if last[1] >= 0 and c == last[0]:
        sid = last[1]
        if (last[2] == seq - 1 and common >= c) or same(
            pool, starts[sid], starts[sid + 1], data, 0, c
        ):
            last[2] = seq
            return sid
    sid = intern(pool, starts, hashes, slots, state, data, 0, c, True)
    last[0] = c
    last[1] = sid
    last[2] = seq
    return sid


@njit(cache=True, nogil=True)
def scan(  # type: ignore[no-untyped-def]
    buf, pos, line, encoding, ncols, luts, type_ok, kinds, pdata, vol, snapshot,
    mode, probe_depth, decisions,
    p_pool, p_starts, p_hashes, p_slots, p_state,
    bd_pool, bd_starts, bd_hashes, bd_slots, bd_state, bd_depths, bd_keys, bd_rows, bd_row_state,
    b_pool, b_starts, b_hashes, b_slots, b_state,
    s_pool, s_starts, s_hashes, s_slots, s_state,
    d_keys, d_slots, d_state, d_values,
    u_keys, u_slots, u_state, u_values,
    users_dir, projects_dir,
    rej_line, rej_status, rej_aux, rej_start, rej_end, counts, scratch,
):  # fmt: skip
    """Parse the lines of ``buf`` from ``pos`` (line number ``line``) and add every accepted
    one to its directory row and its user row; bad lines go to the ``rej_*`` arrays.

    Each path is decoded into ``pdata[0:]`` over the previous one, and only from where the
    two differ; the slashes, base and sub-directories of the part they share are the
    previous path's. ``mode`` 0: the base directory depth is decided per path cut to
    ``probe_depth`` components (``decisions`` by prefix id; the scan stops at a prefix
    not decided yet so the caller can decide it); mode 1: the longest basedirs-file path
    (``bd_*``, allowed gids in ``bd_keys``) that is a whole-component prefix of the path.

    Returns (position reached, its line number, lines added); ``counts`` holds
    [rejects so far]; ``scratch`` is an int64 array of ``SCRATCH`` for the scan's own use.
    The position is ``len(buf)`` when the chunk is done."""
    w = B.borrow
    buf, luts, type_ok, kinds, pdata, decisions = (
        w(buf),
        w(luts),
        w(type_ok),
        w(kinds),
        w(pdata),
        w(decisions),
    )
    p_pool, p_starts, p_hashes, p_slots, p_state = (
        w(p_pool),
        w(p_starts),
        w(p_hashes),
        w(p_slots),
        w(p_state),
    )
    bd_pool, bd_starts, bd_hashes, bd_slots, bd_state = (
        w(bd_pool),
        w(bd_starts),
        w(bd_hashes),
        w(bd_slots),
        w(bd_state),
    )
    bd_depths, bd_keys, bd_rows, bd_row_state = (
        w(bd_depths),
        w(bd_keys),
        w(bd_rows),
        w(bd_row_state),
    )
    b_pool, b_starts, b_hashes, b_slots, b_state = (
        w(b_pool),
        w(b_starts),
        w(b_hashes),
        w(b_slots),
        w(b_state),
    )
    s_pool, s_starts, s_hashes, s_slots, s_state = (
        w(s_pool),
        w(s_starts),
        w(s_hashes),
        w(s_slots),
        w(s_state),
    )
    d_keys, d_slots, d_state, d_values = w(d_keys), w(d_slots), w(d_state), w(d_values)
    u_keys, u_slots, u_state, u_values = w(u_keys), w(u_slots), w(u_state), w(u_values)
    users_dir, projects_dir = w(users_dir), w(projects_dir)
    rej_line, rej_status, rej_aux, rej_start, rej_end, counts = (
        w(rej_line),
        w(rej_status),
        w(rej_aux),
        w(rej_start),
        w(rej_end),
        w(counts),
    )
    lut = luts[0] if encoding == BASE64 else luts[1]
    scratch = w(scratch)
    row = scratch[0:11]
    last_probe = scratch[11:14]
    last_base = scratch[14:17]
    last_sub = scratch[17:20]
    last_key = scratch[20:23]
    last_user = scratch[23:26]
    pos_ = scratch[26:]
    last_probe[:] = -1
    last_base[:] = -1
    last_sub[:] = -1
    last_key[:] = -2
    last_user[:] = -1
    seq = 0  # lines so far in this call
    prev = -1  # where the previous accepted line's path field starts
    prev_field = 0
    prev_len = 0
    prev_slashes = 0
    last_row = -1
    added = 0
    volkey = np.int64(vol) << np.int64(32)
    n_buf = len(buf)
    while pos < n_buf:
        seq += 1
        p, plen, bad, common = decode_path(buf, pos, encoding, lut, pdata, 0, prev, prev_field,
                                             prev_len)  # fmt: skip
        path_end = p
        st, ax = path_status(buf, pos, p, bad, encoding, pdata, 0, plen)
        t = 0
        if st == OK:
            st, ax, p, _, t = numbers(buf, p, ncols, type_ok, kinds, row)
        if st != OK:
            st, ax, end = line_end(buf, pos, p, st, ax, ncols)
            r = counts[0]
            rej_line[r] = line
            rej_status[r] = st
            rej_aux[r] = ax
            rej_start[r] = pos
            rej_end[r] = end
            counts[0] = r + 1
            pos = end + 1
            line += 1
            prev = -1  # the path buffer holds a part of this line's path
            prev_len = 0
            prev_slashes = 0
            continue
        slashes = _slashes(pdata, plen, common, pos_, prev_slashes)
        e = plen
        comps = slashes
        if plen > 1 and pdata[plen - 1] == _SLASH:  # wrstat 6 ends directories in "/"
            e = plen - 1
            comps -= 1
        if e == 1:
            comps = 0
        g = np.int64(row[2])
        # the base directory
        base = OUTSIDE
        f = -1
        if mode == 0:
            c = _cut(pos_, comps, e, probe_depth)
            pid = _interned(pdata, c, last_probe, seq, common, p_pool, p_starts, p_hashes,
                            p_slots, p_state)  # fmt: skip
            f = decisions[pid] if pid < len(decisions) else UNDECIDED
            if f == UNDECIDED:
                return pos, line, added  # the caller decides, then calls again from here
            if f >= 0 and comps >= f:
                base = _interned(pdata, _cut(pos_, comps, e, f), last_base, seq, common,
                                 b_pool, b_starts, b_hashes, b_slots, b_state)  # fmt: skip
            else:
                f = -1
        else:
            for k in bd_depths:
                if comps < k:
                    continue
                cand = intern(bd_pool, bd_starts, bd_hashes, bd_slots, bd_state,
                              pdata, 0, _cut(pos_, comps, e, k), False)  # fmt: skip
                if cand >= 0 and row_of(bd_keys, bd_rows, bd_row_state, cand, g, 0, False) >= 0:
                    base = cand
                    f = k
                    break
        # the sub-directory
        sub = DOT
        if base != OUTSIDE and comps > f:
            first_end = _cut(pos_, comps, e, f + 1)
            cut = -1
            if comps == f + 1:
                if t == _D:
                    cut = first_end
            else:
                a = pos_[f] + 1  # the first component below the base
                two = _is_word(pdata, a, first_end, users_dir) or _is_word(
                    pdata, a, first_end, projects_dir
                )
                if not two or (comps == f + 2 and t != _D):
                    cut = first_end  # one component (or a file directly in users/)
                else:
                    cut = _cut(pos_, comps, e, f + 2)
            if cut >= 0:
                sub = _interned(pdata, cut, last_sub, seq, common, s_pool, s_starts,
                                s_hashes, s_slots, s_state)  # fmt: skip
        # the figures
        nl = row[8]
        usage = row[0] // (nl if nl > 0 else 1)
        mt = row[4]
        newest = mt if mt < snapshot else snapshot
        is_file = t == _F
        key_a = volkey | g
        if key_a != last_key[0] or base != last_key[1] or sub != last_key[2]:
            last_row = row_of(d_keys, d_slots, d_state, key_a, base, sub, True)
            last_key[0] = key_a
            last_key[1] = base
            last_key[2] = sub
        d_values[last_row, USAGE] += usage
        d_values[last_row, NEWEST] = max(d_values[last_row, NEWEST], newest)
        if is_file:
            d_values[last_row, FILES] += 1
            d_values[last_row, TYPE0 + file_type(pdata, 0, e)] += usage
        ukey = volkey | row[1]
        if ukey != last_user[0] or g != last_user[1]:
            last_user[0] = ukey
            last_user[1] = g
            last_user[2] = row_of(u_keys, u_slots, u_state, ukey, g, 0, True)
        ur = last_user[2]
        u_values[ur, USAGE] += usage
        u_values[ur, NEWEST] = max(u_values[ur, NEWEST], newest)
        by_mtime = AGES0 + _age_class(snapshot - mt)
        by_atime = AGES0 + N_AGES + _age_class(snapshot - row[3])
        u_values[ur, by_mtime] += usage
        u_values[ur, by_atime] += usage
        if is_file:
            u_values[ur, FILES] += 1
            u_values[ur, by_mtime + 2 * N_AGES] += 1
            u_values[ur, by_atime + 2 * N_AGES] += 1
        added += 1
        prev = pos
        prev_field = path_end - pos
        prev_len = plen
        prev_slashes = slashes
        pos = p + 1  # the numbers end at the line end
        line += 1
    return pos, line, added


@njit(cache=True, nogil=True, inline="always")
def _is_word(data, a, b, word):  # type: ignore[no-untyped-def]
    if b - a != len(word):
        return False
    for k in range(len(word)):
        if data[a + k] != word[k]:
            return False
    return True


_USERS_DIR = np.frombuffer(b"users", dtype=np.uint8)
_PROJECTS_DIR = np.frombuffer(b"projects", dtype=np.uint8)
_NO_ARRAY = np.zeros(0, dtype=np.int64)


class Tally:
    """Running totals of stats lines (see ``stages.wrstat.tally``)."""

    def __init__(self, base: Rules | Listed) -> None:
        self.base = base
        self.sources: dict[str, int] = {}
        self.probes = Strings()
        self.decisions = np.full(1024, UNDECIDED, dtype=np.int64)
        self.decided = 0
        self.bases = base.paths if isinstance(base, Listed) else Strings()
        self.subs = Strings()
        self.dirs = Rows([0, 0, INT64_MIN] + [0] * len(FILE_TYPES))
        self.users = Rows([0, 0, INT64_MIN] + [0] * AGE_WIDTH)
        self.accepted: dict[str, int] = {}
        self.pdata = np.empty(0, dtype=np.uint8)  # one decoded path at a time
        self.scratch = np.empty(SCRATCH, dtype=np.int64)

    def add(
        self, data: np.ndarray, encoding: int, ncols: int, snapshot: int, file: str, line: int,
    ) -> list[dict[str, Any]]:  # fmt: skip
        """Add a chunk of lines of ``file``; returns reject records for the lines that are
        not valid."""
        vol = self.sources.setdefault(file, len(self.sources))
        n_max = int(count_lines(data))
        nbytes = len(data)
        for strings in (self.subs, self.bases, self.probes):
            strings.reserve(n_max, nbytes)
        self.dirs.reserve(n_max)
        self.users.reserve(n_max)
        if len(self.decisions) < len(self.probes) + n_max:
            grown = np.full(2 * (len(self.probes) + n_max), UNDECIDED, dtype=np.int64)
            grown[: len(self.decisions)] = self.decisions
            self.decisions = grown
        if len(self.pdata) < nbytes:
            self.pdata = np.empty(max(nbytes, 2 * len(self.pdata)), dtype=np.uint8)
        rej = [np.empty(n_max, dtype=np.int64) for _ in range(5)]
        counts = np.zeros(1, dtype=np.int64)
        listed = self.base if isinstance(self.base, Listed) else None
        mode, depth = (1, 0) if listed else (0, self.base.probe_depth)  # type: ignore[union-attr]
        p, b, s, d, u = self.probes, self.bases, self.subs, self.dirs, self.users
        lp = listed.paths if listed else p
        la = listed.allowed if listed else u
        pos, total = 0, 0
        while True:
            pos, line, added = scan(
                data, pos, line, encoding, ncols, LUTS, TYPE_OK, KINDS, self.pdata,
                vol, snapshot, mode, depth, self.decisions,
                p.pool, p.starts, p.hashes, p.slots, p.state,
                lp.pool, lp.starts, lp.hashes, lp.slots, lp.state,
                listed.depths if listed else _NO_ARRAY, la.keys, la.slots, la.state,
                b.pool, b.starts, b.hashes, b.slots, b.state,
                s.pool, s.starts, s.hashes, s.slots, s.state,
                d.keys, d.slots, d.state, d.values,
                u.keys, u.slots, u.state, u.values,
                _USERS_DIR, _PROJECTS_DIR, *rej, counts, self.scratch,
            )  # fmt: skip
            total += int(added)
            if pos >= len(data):
                break
            self._decide()  # a path prefix not seen before stopped the scan
        self.accepted[file] = self.accepted.get(file, 0) + total
        return self._rejects(data, file, ncols, encoding, rej, int(counts[0]))

    def _decide(self) -> None:
        """Base-directory depths for the path prefixes not decided yet."""
        assert isinstance(self.base, Rules)
        for sid in range(self.decided, len(self.probes)):
            self.decisions[sid] = self.base.depth(self.probes.get(sid))
        self.decided = len(self.probes)

    @staticmethod
    def _rejects(
        data: np.ndarray,
        file: str,
        ncols: int,
        encoding: int,
        rej: list[np.ndarray],
        n: int,
    ) -> list[dict[str, Any]]:
        line, status, aux, start, end = (a[:n].tolist() for a in rej)
        return [
            {
                "kind": "reject",
                "file": file,
                "line": line[i],
                "reason": reason(status[i], aux[i], ncols, encoding),
                "raw": go_escape(data[start[i] : end[i]].tobytes()),
            }
            for i in range(n)
        ]

    def partial(self) -> dict[str, Any]:
        """The totals so far, as columns: ``dirs`` and ``users``; ``ages``: each user row's
        age profile (``stages.wrstat.layout.AGES0`` onwards), one row per user row."""
        names = {v: k for k, v in self.sources.items()}
        d = len(self.dirs)
        keys, vals = self.dirs.keys[:d], self.dirs.values[:d]
        bases = self.bases.all()
        subs = self.subs.all()
        base_col = np.empty(d, dtype=object)
        sub_col = np.empty(d, dtype=object)
        for r, (b, s) in enumerate(zip(keys[:, 1].tolist(), keys[:, 2].tolist(), strict=True)):
            base = bases[b] if b != OUTSIDE else None
            base_col[r] = base
            sub_col[r] = b"." if s == DOT else subs[s][len(base or b"") + 1 :]
        dirs = Columns(
            source=np.array([names[v] for v in (keys[:, 0] >> 32).tolist()], dtype=object),
            gid=(keys[:, 0] & 0xFFFFFFFF).astype(np.uint32),
            base=base_col,
            sub=sub_col,
            usage=vals[:, USAGE].copy(),
            files=vals[:, FILES].copy(),
            newest=vals[:, NEWEST].copy(),
            **{f"type_{i}": vals[:, TYPE0 + i].copy() for i in range(len(FILE_TYPES))},
        )
        u = len(self.users)
        ukeys, uvals = self.users.keys[:u], self.users.values[:u]
        users = Columns(
            source=np.array([names[v] for v in (ukeys[:, 0] >> 32).tolist()], dtype=object),
            uid=(ukeys[:, 0] & 0xFFFFFFFF).astype(np.uint32),
            gid=ukeys[:, 1].astype(np.uint32),
            usage=uvals[:, USAGE].copy(),
            files=uvals[:, FILES].copy(),
            newest=uvals[:, NEWEST].copy(),
        )
        return {"kind": "partial", "dirs": dirs, "users": users, "accepted": dict(self.accepted),
                "ages": uvals[:, AGES0 : AGES0 + AGE_WIDTH].copy()}  # fmt: skip


def warm() -> None:
    """Load the compiled tally (compiling it the first time ever), with the argument types
    a run gives it: a process that calls this before it forks hands it to its children."""
    warm_parser()
    with compiling_notice("the wrstat usage tally"):
        tally = Tally(Rules())
        tally.add(np.frombuffer(SAMPLE, dtype=np.uint8), BASE64, 11, 10, "x", 1)
        Listed([(1, b"/lustre/scratch1/humgen")])
