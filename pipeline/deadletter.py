"""The dead-letter files: batches a stage could not process, kept with the error.

One JSON object per line in ``<run_dir>/dead-letters/<run id>/<stage>.<replica id>.jsonl``::

    {"stage": "parse", "replica": 1, "from": "read/0", "batch": 17, "attempt": 1,
     "records": 1000, "error": "ValueError: ...", "where": "stages.x:parse (x.py:12)",
     "traceback": "...", "items": [...]}

Items are kept whole so they can be inspected and fed again: ``bytes`` appear as
``{"$bytes": base64}``, numpy arrays as ``{"$ndarray": {"dtype", "shape", "base64"}}`` and
``Columns`` as ``{"$columns": {name: array, ...}}``.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.columns import Columns

DIR = "dead-letters"


def json_value(obj: Any) -> Any:
    """A JSON form of bytes, numpy arrays and ``Columns``, for ``json.dumps(default=...)``."""
    if isinstance(obj, bytes | bytearray | memoryview):
        return {"$bytes": base64.b64encode(bytes(obj)).decode()}
    if isinstance(obj, np.ndarray):
        if obj.dtype.hasobject:
            return {
                "$ndarray": {"dtype": "object", "shape": list(obj.shape), "values": obj.tolist()}
            }
        data = np.ascontiguousarray(obj).tobytes()
        return {
            "$ndarray": {
                "dtype": obj.dtype.str,
                "shape": list(obj.shape),
                "base64": base64.b64encode(data).decode(),
            }
        }
    if isinstance(obj, Columns):
        return {"$columns": dict(obj.items())}
    if isinstance(obj, np.generic):
        return obj.item()
    return repr(obj)


def _decode_hook(obj: dict[str, Any]) -> Any:
    if "$bytes" in obj and len(obj) == 1:
        return base64.b64decode(obj["$bytes"])
    if "$ndarray" in obj and len(obj) == 1:
        spec = obj["$ndarray"]
        if spec["dtype"] == "object":
            arr = np.empty(len(spec["values"]), dtype=object)
            arr[:] = spec["values"]
            return arr.reshape(spec["shape"])
        raw = base64.b64decode(spec["base64"])
        return np.frombuffer(raw, dtype=np.dtype(spec["dtype"])).reshape(spec["shape"]).copy()
    if "$columns" in obj and len(obj) == 1:
        return Columns(obj["$columns"])
    return obj


def folder(run_dir: Path, run_id: str) -> Path:
    """Where the dead letters of one run go."""
    return run_dir / DIR / run_id


def write(folder: Path, stage: str, rid: int, entry: dict[str, Any], items: list[Any]) -> Path:
    """Append one failed batch; the line is flushed and synced before returning."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{stage}.{rid}.jsonl"
    line = json.dumps({**entry, "items": items}, default=json_value, ensure_ascii=False)
    with path.open("a", encoding="utf-8") as f:
        f.write(line + "\n")
        f.flush()
        os.fsync(f.fileno())
    return path


def read(path: Path) -> list[dict[str, Any]]:
    """The entries of one dead-letter file, items decoded back to Python values."""
    with path.open(encoding="utf-8") as f:
        return [json.loads(line, object_hook=_decode_hook) for line in f if line.strip()]


def files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.jsonl")) if folder.is_dir() else []
