"""A JSON-lines sink that writes atomically."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import IO, Any

from pipeline import Columns, Context
from pipeline.deadletter import json_value as to_json_value


class WriteJsonLines:
    """Write every item as one JSON line to ``path``.

    The file appears complete or not at all: lines go to ``path.tmp`` and it is renamed at
    the end of the stream. With several replicas, each writes ``<path>.<replica>``.
    ``Columns`` items become one line per row; bytes and arrays are encoded as in the
    dead-letter files.
    """

    def __init__(self, path: str, sort_keys: bool = False) -> None:
        self.path = path
        self.sort_keys = sort_keys
        self.file: IO[str] | None = None
        self.target = Path(path)
        self.lines = 0

    def setup(self, ctx: Context) -> None:
        if ctx.replicas > 1:
            self.target = Path(f"{self.path}.{ctx.replica}")
        self.target.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.target.with_name(self.target.name + ".tmp")
        self.file = self.tmp.open("w", encoding="utf-8")

    def process_batch(self, items: list[Any], ctx: Context) -> None:
        assert self.file is not None
        dumps = json.dumps
        out: list[str] = []
        for item in items:
            if isinstance(item, Columns):
                names = item.names
                cols = [item[n].tolist() for n in names]
                out.extend(
                    dumps(
                        dict(zip(names, row, strict=True)),
                        default=to_json_value,
                        sort_keys=self.sort_keys,
                    )
                    for row in zip(*cols, strict=True)
                )
            else:
                out.append(dumps(item, default=to_json_value, sort_keys=self.sort_keys))
        if out:
            self.file.write("\n".join(out) + "\n")
            self.lines += len(out)

    def finish(self, ctx: Context) -> None:
        assert self.file is not None
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()
        self.tmp.replace(self.target)
        ctx.log.info("wrote %d lines to %s", self.lines, self.target)
