"""Age profiles in the usage tally: every entry's usage and file in wrstat's age classes,
by mtime and by atime, relative to the snapshot."""

from __future__ import annotations

import base64

import numpy as np

from stages.wrstat import layout as K
from stages.wrstat.basedirs import Rules
from stages.wrstat.tally import Tally

SNAPSHOT = 1_800_000_000
MONTH = 365 * 86400 // 12  # wrstat's month
#: (age of mtime in seconds, age of atime, the classes they fall in), worked out by hand
CASES = [
    (0, 0, "<1m", "<1m"),
    (-86400, 5, "<1m", "<1m"),  # changed after the snapshot (a wrong clock): new
    (MONTH - 1, MONTH, "<1m", "1-2m"),  # a class holds its lower edge
    (2 * MONTH, 2 * MONTH - 1, "2-6m", "1-2m"),
    (6 * MONTH + 7, 5 * MONTH, "6-12m", "2-6m"),
    (12 * MONTH, 23 * MONTH, "1-2y", "1-2y"),
    (24 * MONTH, 35 * MONTH, "2-3y", "2-3y"),
    (36 * MONTH, 59 * MONTH, "3-5y", "3-5y"),
    (60 * MONTH, 84 * MONTH - 1, "5-7y", "5-7y"),
    (84 * MONTH, 40 * 12 * MONTH, ">7y", ">7y"),
]


def test_each_entry_counts_in_the_class_of_its_mtime_and_of_its_atime() -> None:
    lines = []
    for i, (m_age, a_age, _, _) in enumerate(CASES):
        path = base64.b64encode(b"/lustre/scratch1/team/t1/f%d" % i)
        size = 10**i
        lines.append(path + b"\t%d\t7\t3000\t%d\t%d\t1\tf\t%d\t1\t1"
                     % (size, SNAPSHOT - a_age, SNAPSHOT - m_age, i + 1))  # fmt: skip
    # a directory: its usage counts, it is not a file
    lines.append(base64.b64encode(b"/lustre/scratch1/team/t1") + b"\t4096\t7\t3000\t%d\t%d\t1"
                 b"\td\t99\t2\t1" % (SNAPSHOT - 3 * MONTH, SNAPSHOT - 3 * MONTH))  # fmt: skip
    tally = Tally(Rules())
    data = np.frombuffer(b"\n".join(lines) + b"\n", dtype=np.uint8)
    assert tally.add(data, K.BASE64, 11, SNAPSHOT, "f", 1) == []
    partial = tally.partial()
    assert partial["users"]["uid"].tolist() == [7]
    profile = partial["ages"][0].tolist()
    n = K.N_AGES
    usage_m, usage_a, files_m, files_a = (profile[k * n : (k + 1) * n] for k in range(4))
    want_um, want_ua, want_fm, want_fa = ([0] * n for _ in range(4))
    for i, (_, _, m_class, a_class) in enumerate(CASES):
        m, a = K.AGE_CLASSES.index(m_class), K.AGE_CLASSES.index(a_class)
        want_um[m] += 10**i
        want_ua[a] += 10**i
        want_fm[m] += 1
        want_fa[a] += 1
    two_months = K.AGE_CLASSES.index("2-6m")
    want_um[two_months] += 4096 // 2  # the directory: nlink 2
    want_ua[two_months] += 4096 // 2
    assert (usage_m, usage_a, files_m, files_a) == (want_um, want_ua, want_fm, want_fa)
    # every class is exercised, and the profile adds up to the user's usage and files
    assert all(files_m[k] or files_a[k] for k in range(n))
    users = partial["users"]
    assert sum(usage_m) == sum(usage_a) == int(users["usage"][0])
    assert sum(files_m) == sum(files_a) == int(users["files"][0]) == len(CASES)


def test_the_edges_are_wrstats_months_and_years() -> None:
    assert K.MONTH == 365 * 86400 // 12
    assert [e // K.MONTH for e in K.AGE_EDGES] == [1, 2, 6, 12, 24, 36, 60, 84]
    assert len(K.AGE_CLASSES) == len(K.AGE_EDGES) + 1 == K.N_AGES
