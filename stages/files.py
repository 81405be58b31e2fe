"""Sources that read files: lines, or JSON records, from paths or glob patterns.

Files are shared out among the source's replicas (file i goes to replica i mod n), read one
line at a time (gzip files too), and nothing is ever read whole into memory. Input that
cannot be read (undecodable bytes, bad JSON, a truncated gzip) is reported with its file and
line, and the run finishes with exit code 3.
"""

from __future__ import annotations

import glob
import gzip
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from pipeline import Context


def expand(paths: str | list[str]) -> list[Path]:
    """Every file named by ``paths`` (globs allowed), sorted, each once."""
    patterns = [paths] if isinstance(paths, str) else list(paths)
    found: dict[str, None] = {}
    for given in patterns:
        pattern = os.path.expanduser(given)
        matches = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
        matches = [m for m in matches if not os.path.isdir(m)]
        if not matches or not os.path.exists(matches[0]):
            msg = f"no file matches {pattern!r}; check the path (relative to {os.getcwd()})"
            raise FileNotFoundError(msg)
        for m in matches:
            found[m] = None
    return [Path(p) for p in found]


def open_binary(path: Path) -> IO[bytes]:
    if path.suffix == ".gz":
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return path.open("rb")


def _lines(ctx: Context, path: Path, encoding: str) -> Iterator[tuple[int, str]]:
    """Numbered lines without their line ending. A line that does not decode is reported
    (file and line) and skipped; a file that cannot be read to its end is reported with how
    far it got."""
    n = 0
    try:
        with open_binary(path) as f:
            for n, raw in enumerate(f, 1):
                try:
                    yield n, raw.decode(encoding).rstrip("\r\n")
                except UnicodeDecodeError as exc:
                    ctx.input_incomplete(
                        f"{path}:{n}", f"not valid {encoding} ({exc.reason}); line skipped"
                    )
    except (EOFError, gzip.BadGzipFile, OSError) as exc:
        ctx.input_incomplete(str(path), f"read {n} lines, then: {exc}")


def read_lines(
    ctx: Context, paths: str | list[str], encoding: str = "utf-8", skip_blank: bool = False
) -> Iterator[dict[str, Any]]:
    """One record per line: ``{"file": path, "line": n, "text": line}``."""
    files = expand(paths)
    for path in files[ctx.replica :: ctx.replicas]:
        name = str(path)
        for n, text in _lines(ctx, path, encoding):
            if skip_blank and not text.strip():
                continue
            yield {"file": name, "line": n, "text": text}


def read_jsonl(ctx: Context, paths: str | list[str], encoding: str = "utf-8") -> Iterator[Any]:
    """One item per line of JSON-lines files; blank lines are skipped, bad ones reported."""
    files = expand(paths)
    decode = json.JSONDecoder().decode
    for path in files[ctx.replica :: ctx.replicas]:
        for n, text in _lines(ctx, path, encoding):
            if not text.strip():
                continue
            try:
                yield decode(text)
            except ValueError as exc:
                ctx.input_incomplete(f"{path}:{n}", f"not valid JSON ({exc}); line skipped")
