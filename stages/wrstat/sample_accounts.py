"""Who owns the sample data, and their quotas: the files ``pipeline gen wrstat`` writes
beside the stats files so the demo's reports have names, PIs, quotas and warnings.

* ``identities.tsv``: a mapping file (``stages.wrstat.identities``) naming every group of
  the sample volumes, with a PI, and every user;
* ``quotas.csv``: ``group,limit,volume`` rows (KiB), as lurge's quota repository held them,
  set from what each group uses in its biggest base directory on each volume so that the
  demo shows every warning level: about one group in eight over 92% of its quota (Not OK),
  one in eight at 70-73%, which the sample's growth takes past 85% within a week (Kinda OK),
  the others with room to spare; root has no limit (0).

Names are made up, and the same for the same seed.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Mapping
from pathlib import Path

_TEAMS = ["hgi", "tol", "casm", "cellgen", "pam", "humgen", "opentargets", "infgen", "vertres",
          "malaria", "mouse", "zebrafish", "sanger-ir", "cancer", "genomics", "imaging", "pathdev",
          "treeoflife", "darwin", "pacbio", "ont", "rnaseq", "atac", "hic", "orgs", "tissue",
          "immune", "brain", "lung", "kidney", "liver", "heart", "skin", "gut", "blood", "bone",
          "eye", "ear", "nose", "throat"]  # fmt: skip
_SURNAMES = ["Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies",
             "Patel", "Robinson", "Wright", "Thompson", "Evans", "Walker", "White", "Roberts",
             "Green", "Hall", "Thomas", "Clarke"]  # fmt: skip


def group_name(gid: int) -> str:
    return "root" if gid == 0 else _TEAMS[(gid - 1000) // 7 % len(_TEAMS)]


def write_identities(folder: Path, gids: Iterable[int], uids: Iterable[int]) -> Path:
    path = folder / "identities.tsv"
    lines = ["# kind\tid\tname\tPI (sample data: pipeline gen wrstat)"]
    for gid in sorted(set(gids)):
        pi = "-" if gid == 0 else _SURNAMES[gid % len(_SURNAMES)]
        lines.append(f"group\t{gid}\t{group_name(gid)}\t{pi}")
    for uid in sorted(set(uids)):
        first, last = chr(ord("a") + uid % 26), chr(ord("a") + uid // 26 % 26)
        lines.append("user\t%d\t%s%s%d" % (uid, first, last, uid % 97))  # noqa: UP031
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_quotas(folder: Path, usage: Mapping[tuple[str, int], int], seed: int) -> Path:
    """``usage``: bytes per (volume, gid) that the quota is set from."""
    path = folder / "quotas.csv"
    rows = ["group,limit,volume"]
    for (volume, gid), used in sorted(usage.items()):
        if gid == 0:
            rows.append(f"root,0,{volume}")
            continue
        roll = random.Random(f"{seed}-{volume}-{gid}").random()
        if roll < 0.125:
            factor = 1.0 / (0.92 + roll * 0.56)  # 92-99% full
        elif roll < 0.25:
            factor = 1.0 / (0.70 + (roll - 0.125) * 0.24)  # 70-73% full
        else:
            factor = 1.5 + roll * 3
        rows.append(f"{group_name(gid)},{math.ceil(used * factor / 1024)},{volume}")
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path
