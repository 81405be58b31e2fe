"""Hand-made stats files, one per wrstat era and naming, against reports checked by hand.

The same twelve entries in every era (see ENTRIES); the expected figures below were worked
out on paper from the rules: usage = size // nlink (nlink 0 as 1), newest mtime capped at
the snapshot, base directories of 4 components (5 under humgen, one more past an mdtN),
sub-directories one deep (two under users/), entries above every base directory on their
volume's own row.
"""

from __future__ import annotations

import base64
import gzip
from pathlib import Path

import pytest

from tests.conftest import REPO, run_topology

pytestmark = pytest.mark.integration

DAY = 86400
MIDNIGHT = 1793491200  # 2026-11-01 00:00 UTC
NOON = MIDNIGHT + 12 * 3600

S = "/lustre/scratch123"
# (path, size, uid, gid, mtime in days before the snapshot, type, nlink)
ENTRIES = [
    (f"{S}", 4096, 0, 0, 10, "d", 2),
    (f"{S}/humgen", 4096, 0, 1000, 5, "d", 2),
    (f"{S}/humgen/projects/p1", 4096, 101, 1000, 2, "d", 3),
    (f"{S}/humgen/projects/p1/a.bam", 1000, 101, 1000, 1, "f", 1),
    (f"{S}/humgen/projects/p1/users", 4096, 101, 1000, 3, "d", 2),
    (f"{S}/humgen/projects/p1/users/ann/x\tq.vcf.gz", 600, 101, 1000, -3, "f", 2),
    (f"{S}/humgen/projects/p1/users/notes.txt", 50, 102, 1000, 20, "f", 0),
    (f"{S}/humgen/projects/p10/b.cram", 2000, 102, 2000, 40, "f", 1),
    (f"{S}/team/t\tx/data/\u00e9\U0001f600\udc80.fq", 300, 103, 3000, 1, "f", 1),
    (f"{S}/realdata/mdt2/projects/q/r.sam", 700, 104, 3000, 7, "f", 1),
    (f'{S}/team/t\tx/"quoted".bed', 30, 103, 3000, 2, "l", 1),
]
BAD = [b"not a stats line", b"L2x1c3RyZQ==\t1\t2"]

# Go-quoted forms, escapes written by hand (\x80, \u00e9, \U0001F600, \t, \")
QUOTED = {
    5: r'"/lustre/scratch123/humgen/projects/p1/users/ann/x\tq.vcf.gz"',
    8: r'"/lustre/scratch123/team/t\tx/data/\u00e9\U0001F600\x80.fq"',
    10: r'"/lustre/scratch123/team/t\tx/\"quoted\".bed"',
}

GROUP = """\
Volume	Top Level Path	PI	Group	GID	Usage (bytes)	Quota (bytes)	Last Modified (days)	Files	Warning	Days Until Full
scratch123	/lustre/scratch123 (outside any base directory)	-	{g0}	0	2048	0	10.0	0	OK	-
scratch123	/lustre/scratch123 (outside any base directory)	Smith	{g1000}	1000	2048	5120	5.0	0	OK	-
scratch123	/lustre/scratch123/humgen/projects/p1	Smith	{g1000}	1000	4763	5120	0.0	3	Not OK	-
scratch123	/lustre/scratch123/humgen/projects/p10	Jones	{g2000}	2000	2000	102400	40.0	1	OK	-
scratch123	/lustre/scratch123/realdata/mdt2/projects	-	{g3000}	3000	700	-	7.0	1	-	-
scratch123	/lustre/scratch123/team/t\\tx	-	{g3000}	3000	330	-	1.0	1	-	-
"""
#: who is who: groups 1000 and 2000 and user 101 from a mapping file, the rest from the system
MAPPING = "group\t1000\thgi\tSmith\ngroup\t2000\tteam2000\tJones\nuser\t101\talice\n"
#: root has no limit; hgi 5 KiB, so p1 (4,763 bytes, 93%) is Not OK; gid 3000 has no quota
QUOTAS = "group,limit\nroot,0\nhgi,5\n2000,100\n"
USER = """\
Volume	User	UID	Group	GID	Usage (bytes)	Files	Last Modified (days)
scratch123	{u0}	0	{g0}	0	2048	0	10.0
scratch123	{u0}	0	{g1000}	1000	2048	0	5.0
scratch123	{u101}	101	{g1000}	1000	4713	2	0.0
scratch123	{u102}	102	{g1000}	1000	50	1	20.0
scratch123	{u102}	102	{g2000}	2000	2000	1	40.0
scratch123	{u103}	103	{g3000}	3000	330	1	1.0
scratch123	{u104}	104	{g3000}	3000	700	1	7.0
"""
DIRECTORY = """\
Volume	Top Level Path	Directory	Group	GID	Usage (bytes)	Files	Last Modified (days)	bam	cram	sam	vcf	vcf.gz	fastq	fastq.gz	bed/ped	other
scratch123	/lustre/scratch123 (outside any base directory)	.	{g0}	0	2048	0	10.0	0	0	0	0	0	0	0	0	0
scratch123	/lustre/scratch123 (outside any base directory)	.	{g1000}	1000	2048	0	5.0	0	0	0	0	0	0	0	0	0
scratch123	/lustre/scratch123/humgen/projects/p1	.	{g1000}	1000	2365	1	1.0	1000	0	0	0	0	0	0	0	0
scratch123	/lustre/scratch123/humgen/projects/p1	users	{g1000}	1000	2098	1	3.0	0	0	0	0	0	0	0	0	50
scratch123	/lustre/scratch123/humgen/projects/p1	users/ann	{g1000}	1000	300	1	0.0	0	0	0	0	300	0	0	0	0
scratch123	/lustre/scratch123/humgen/projects/p10	.	{g2000}	2000	2000	1	40.0	0	2000	0	0	0	0	0	0	0
scratch123	/lustre/scratch123/realdata/mdt2/projects	q	{g3000}	3000	700	1	7.0	0	0	700	0	0	0	0	0	0
scratch123	/lustre/scratch123/team/t\\tx	.	{g3000}	3000	30	0	2.0	0	0	0	0	0	0	0	0	0
scratch123	/lustre/scratch123/team/t\\tx	data	{g3000}	3000	300	1	1.0	0	0	0	0	0	300	0	0	0
"""

STD = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
SORTED = b"+/0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

ERAS = {  # era: (path encoding, columns, new naming)
    "v3": ("base64", 11, False),
    "v5.1": ("sorted", 11, False),
    "v5.2": ("quoted", 11, False),
    "v6.2": ("quoted", 11, True),
    "v6.4": ("quoted", 12, True),
}


def raw(path: str) -> bytes:
    return path.encode("utf-8", "surrogateescape")


def write_fixture(folder: Path, era: str) -> Path:
    encoding, columns, new = ERAS[era]
    snapshot = NOON if new else MIDNIGHT
    lines = []
    for i, (path, size, uid, gid, days, kind, nlink) in enumerate(ENTRIES):
        p = raw(path) + (b"/" if new and kind == "d" else b"")
        if encoding == "quoted":
            field = QUOTED.get(i, '"' + path + ("/" if new and kind == "d" else "") + '"').encode()
        else:
            field = base64.b64encode(p)
            if encoding == "sorted":
                field = field.translate(bytes.maketrans(STD, SORTED))
        mtime = snapshot - days * DAY
        cols = [field, b"%d" % size, b"%d" % uid, b"%d" % gid, b"%d" % (mtime + 5),
                b"%d" % mtime, b"%d" % (mtime + 9), kind.encode(), b"%d" % (500 + i),
                b"%d" % nlink, b"64768"]  # fmt: skip
        if columns == 12:
            cols.append(b"%d" % size)
        lines.append(b"\t".join(cols))
    lines[6:6] = BAD  # two lines that cannot be read, in the middle
    if new:
        target = folder / "20261101-120000_\uff0flustre\uff0fscratch123" / "stats.gz"
    else:
        target = folder / "20261101_scratch123.abc.def.stats.gz"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(gzip.compress(b"\n".join(lines) + b"\n"))
    return target


def names() -> dict[str, str]:
    import grp  # noqa: PLC0415
    import pwd  # noqa: PLC0415

    def group(gid: int) -> str:
        try:
            return grp.getgrgid(gid).gr_name
        except KeyError:
            return str(gid)

    def user(uid: int) -> str:
        try:
            return pwd.getpwuid(uid).pw_name
        except KeyError:
            return str(uid)

    out = {f"g{g}": group(g) for g in (0, 3000)} | {"g1000": "hgi", "g2000": "team2000"}
    out.update({f"u{u}": user(u) for u in (0, 102, 103, 104)} | {"u101": "alice"})
    return out


@pytest.mark.parametrize("era", list(ERAS))
def test_a_hand_made_file_gives_the_hand_checked_reports(
    era: str, tmp_path: Path, run_dir: Path
) -> None:
    write_fixture(tmp_path / "in", era)
    out = tmp_path / "reports"
    (tmp_path / "ids.tsv").write_text(MAPPING)
    (tmp_path / "quotas.csv").write_text(QUOTAS)
    report = run_topology(
        (REPO / "topology.yaml").read_text(),
        run_dir,
        WRSTAT_DIR=str(tmp_path / "in"),
        REPORT_DIR=str(out),
        USAGE_REPLICAS="2",
        IDENTITIES=str(tmp_path / "ids.tsv"),
        QUOTA_FILE=str(tmp_path / "quotas.csv"),
    )
    assert report.ok, report.errors
    # gid 3000's quota is nobody's: the summary says so and names the file that says why
    assert (
        len(report.warnings) == 1
        and "no quota for 1 group(s) on 1 volume(s)" in (report.warnings[0])
    )
    unknown = (out / "quota-unknown-20261101.tsv").read_text().splitlines()
    assert unknown[0] == "Volume\tGroup\tReason" and len(unknown) == 2
    assert unknown[1].startswith(f"scratch123\t{names()['g3000']}\t")
    assert "has no row for group" in unknown[1]
    n = names()
    assert (out / "group-20261101.tsv").read_text() == GROUP.format(**n)
    assert (out / "user-20261101.tsv").read_text() == USER.format(**n)
    assert (out / "directory-20261101.tsv").read_text() == DIRECTORY.format(**n)
    rejects = (out / "rejects-20261101.tsv").read_text().splitlines()
    assert rejects[0] == "File\tLine\tReason\tRaw"
    assert [r.split("\t")[1:] for r in rejects[1:]] == [
        ["7", f"expected {ERAS[era][1]} tab-separated columns, found 1", "not a stats line"],
        ["8", f"expected {ERAS[era][1]} tab-separated columns, found 3", "L2x1c3RyZQ==\\t1\\t2"],
    ]
