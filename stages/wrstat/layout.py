"""What a wrstat stats line holds and what the usage tallies hold: plain constants, with
no compiled code, so the supervisor and the report stage can use them without loading the
compiler.
"""

from __future__ import annotations

#: path encodings
BASE64 = 0
BASE64_SORTED = 1  # wrstat 5.1's lexically ordered alphabet
QUOTED = 2

ERA_NAMES = {BASE64: "base64", BASE64_SORTED: "sorted base64", QUOTED: "quoted"}

#: line statuses
OK = 0
COLUMNS = 1  # aux: columns found
BAD_BASE64 = 2  # aux: offset in the field
BAD_QUOTING = 3  # aux: offset in the field
NOT_A_NUMBER = 4  # aux: column (1-based)
OUT_OF_RANGE = 5  # aux: column (1-based)
BAD_TYPE = 6  # aux: the type byte
NOT_ABSOLUTE = 7
EMPTY = 8

COLUMN_NAMES = (
    "path", "size", "uid", "gid", "atime", "mtime", "ctime", "type", "inode", "nlink", "dev",
    "apparent size",
)  # fmt: skip

#: entry types wrstat writes: regular file, directory, link, socket, block and char
#: devices, FIFO, other
TYPES = b"fdlsbcFX"

#: file types, in report column order; regular files only
FILE_TYPES = ("bam", "cram", "sam", "vcf", "vcf.gz", "fastq", "fastq.gz", "bed/ped", "other")
OTHER = len(FILE_TYPES) - 1

#: wrstat's age classes (as its ``dguta`` age filters): how long before the snapshot an
#: entry was last modified, or last accessed; a month is a twelfth of a 365-day year
MONTH = 2_628_000
YEAR = 12 * MONTH
AGE_CLASSES = ("<1m", "1-2m", "2-6m", "6-12m", "1-2y", "2-3y", "3-5y", "5-7y", ">7y")
#: the lower edge, in seconds of age, of every class but the first
AGE_EDGES = (MONTH, 2 * MONTH, 6 * MONTH, YEAR, 2 * YEAR, 3 * YEAR, 5 * YEAR, 7 * YEAR)
N_AGES = len(AGE_CLASSES)

#: values of a directory row, and of a user row
USAGE, FILES, NEWEST = 0, 1, 2
TYPE0 = 3
DIR_WIDTH = TYPE0 + len(FILE_TYPES)
#: a user row's age profile, after its usage, files and newest: usage by mtime class, usage
#: by atime class, files by mtime class, files by atime class (``N_AGES`` each)
AGES0 = 3
AGE_WIDTH = 4 * N_AGES
USER_WIDTH = AGES0 + AGE_WIDTH
#: the newest mtime of a row that has none yet
INT64_MIN = -(1 << 63)

#: no base directory: the entry is outside all of them
OUTSIDE = -1
#: the sub-directory of entries directly in their base directory
DOT = -1

#: encoding of the path, from the first byte of the path field: "/" base64-encodes to "L"
#: in the standard alphabet and to "9" in wrstat 5.1's sorted one; quoted paths start '"'
_ENCODINGS = {ord("L"): BASE64, ord("9"): BASE64_SORTED, ord('"'): QUOTED}


def detect(sample: bytes) -> tuple[int, int] | None:
    """(path encoding, columns) from the first lines of a stats file, or None if no line
    among them looks like a stats line."""
    for line in sample.split(b"\n")[:100]:
        cols = line.count(b"\t") + 1
        if line and cols in (11, 12) and line[0] in _ENCODINGS:
            return _ENCODINGS[line[0]], cols
    return None


def reason(status: int, aux: int, ncols: int, encoding: int) -> str:
    """Why a line was rejected, in words."""
    if status == COLUMNS:
        return f"expected {ncols} tab-separated columns, found {aux}"
    if status == BAD_BASE64:
        return f"the path is not valid {ERA_NAMES[encoding]} (at character {aux + 1})"
    if status == BAD_QUOTING:
        return f"the path is not a valid Go-quoted string (at character {aux + 1})"
    if status == NOT_A_NUMBER:
        return f"column {aux} ({COLUMN_NAMES[aux - 1]}) is not a number"
    if status == OUT_OF_RANGE:
        return f"column {aux} ({COLUMN_NAMES[aux - 1]}) is out of range"
    if status == BAD_TYPE:
        return f"column 8 (type) is not one of {TYPES.decode()}"
    if status == NOT_ABSOLUTE:
        return "the path is not absolute"
    if status == EMPTY:
        return "the line is empty"
    return f"unknown problem {status}"
