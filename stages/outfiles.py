r"""Result files: written whole and atomically, as TSV (``-`` for a missing value) or JSON lines.

>>> tsv(("a", "b"), [(1, None)])
'a\tb\n1\t-\n'
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any


def cell(value: Any) -> Any:
    """A value as a result file holds it: NaN (nothing to say) as None, written ``-`` or
    ``null``; bytes (a fixed-width label column) as text, bytes that are not UTF-8 escaped."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    return value


def write_atomically(path: Path, data: str | bytes) -> None:
    """Write ``data`` (text as UTF-8) to ``path`` so that a reader sees the old file or the
    new one whole, and a crash leaves no half-written file under that name."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("wb") as f:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def fsync_dir(path: Path) -> None:
    """Make the names in directory ``path`` (a rename, a new file) survive a crash."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def tsv(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    lines = ["\t".join(header)]
    lines.extend("\t".join("-" if v is None else str(v) for v in row) for row in rows)
    return "\n".join(lines) + "\n"


def jsonl(keys: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    return "".join(json.dumps(dict(zip(keys, row, strict=True)), ensure_ascii=False) + "\n"
                   for row in rows)  # fmt: skip
