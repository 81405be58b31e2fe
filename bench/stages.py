"""Stages the benchmarks run (imported by name in worker processes)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import Context

MIB = 1 << 20


def mark(path: str, key: str, value: float) -> None:
    """Record a timestamp in a small JSON file shared by the stages of one run."""
    p = Path(path)
    data = json.loads(p.read_text()) if p.exists() else {}
    data[key] = value
    p.write_text(json.dumps(data))


def array_source(ctx: Context, count: int, marks: str) -> Any:
    """``count`` 1 MiB arrays (the same buffer each time, as a reader reusing nothing)."""
    block = np.arange(MIB // 8, dtype=np.int64)
    mark(marks, "start", time.time())
    for _ in range(count):
        yield block


#: distinct records cycled by the record benchmark; more than any batch holds, so no batch
#: repeats an object (pickle would send a repeat as a reference)
POOL = 20000


def records(n: int = POOL) -> list[dict[str, Any]]:
    """Dict records of about 100 bytes each as msgpack."""
    return [
        {
            "id": i,
            "user": f"user{i % 977:05d}",
            "path": f"/lustre/scratch123/humgen/projects/p{i % 89}/file{i:06d}.cram",
            "size": i * 37,
            "mtime": 1700000000 + i,
        }
        for i in range(n)
    ]


def record_source(ctx: Context, count: int, marks: str) -> Any:
    """``count`` records, yielded one at a time (the engine batches them)."""
    base = records()
    mark(marks, "start", time.time())
    for k in range(count):
        yield base[k % POOL]


def identity(item: Any, ctx: Context) -> Any:
    return item


def burn(item: Any, ctx: Context, loops: int) -> Any:
    """CPU-bound work in pure Python."""
    x = 0
    for i in range(loops):
        x = (x * 31 + i) % 1000003
    return {"n": item["n"], "x": x}


def numbered(ctx: Context, count: int, marks: str) -> Any:
    mark(marks, "start", time.time())
    for n in range(count):
        yield {"n": n}


class CountSink:
    """Counts records and bytes; notes when the last one arrived."""

    def __init__(self, marks: str) -> None:
        self.marks = marks
        self.records = 0
        self.nbytes = 0

    def process_batch(self, items: list[Any], ctx: Context) -> None:
        self.records += len(items)
        for item in items:
            if isinstance(item, np.ndarray):
                self.nbytes += item.nbytes

    def finish(self, ctx: Context) -> None:
        mark(self.marks, "end", time.time())
        mark(self.marks, "records", self.records)
        mark(self.marks, "bytes", self.nbytes)
