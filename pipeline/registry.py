"""The frames running on this machine, for ``pipeline ps`` and for finding one to control.

Each running frame keeps a small JSON record in a per-user directory (``$PIPELINE_REGISTRY``,
else ``$XDG_RUNTIME_DIR/pipeline``, else ``<tmp>/pipeline-<uid>``; owner-only): its name,
pid, run directory, run id, start time, and its control and status endpoints. The same
record is in ``<run_dir>/frame.json``. A record whose process has gone (a killed frame) is
ignored and removed.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from pipeline.errors import ControlCode, ControlError, UsageError
from pipeline.rundir import INFO


def folder() -> Path:
    env = os.environ.get("PIPELINE_REGISTRY")
    if env:
        return Path(env)
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and Path(runtime).is_dir():
        return Path(runtime) / "pipeline"
    return Path(tempfile.gettempdir()) / f"pipeline-{os.getuid()}"


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def register(record: dict[str, Any]) -> Path:
    """Write this frame's record (replacing any earlier one of the same pid)."""
    d = folder()
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    if d.stat().st_uid != os.getuid():  # someone else's folder in a shared temp dir
        msg = (
            f"the registry of running frames {d} belongs to another user; set "
            "PIPELINE_REGISTRY to a folder of your own"
        )
        raise UsageError(msg)
    path = d / f"{record['pid']}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record))
    tmp.replace(path)
    return path


def unregister(pid: int) -> None:
    with contextlib.suppress(OSError):
        (folder() / f"{pid}.json").unlink()


def running() -> list[dict[str, Any]]:
    """Records of the frames running now, oldest first."""
    out = []
    d = folder()
    for path in sorted(d.glob("*.json")) if d.is_dir() else ():
        try:
            rec = json.loads(path.read_text())
            pid = int(rec["pid"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if not alive(pid):
            with contextlib.suppress(OSError):
                path.unlink()
            continue
        out.append(rec)
    return sorted(out, key=lambda r: r.get("started", 0))


def find(which: str | None) -> dict[str, Any]:
    """The record of one running frame: ``which`` is a run directory, a frame name or a pid;
    None means the only frame running. ``ControlError`` (unreachable) says what to do."""
    if which is not None and (Path(which) / INFO).is_file():
        try:
            rec = json.loads((Path(which) / INFO).read_text())
        except (OSError, ValueError) as exc:
            msg = f"cannot read {Path(which) / INFO}: {exc}"
            raise ControlError(ControlCode.UNREACHABLE, msg) from None
        if isinstance(rec, dict) and "api" in rec and alive(int(rec.get("pid", 0))):
            return rec
        msg = f"no frame is running in {which}"
        raise ControlError(ControlCode.UNREACHABLE, msg)
    frames = running()
    if which is not None:
        frames = [f for f in frames if which in (f.get("frame"), str(f.get("pid")))]
    if len(frames) == 1:
        return frames[0]
    if not frames:
        what = f"named {which!r} " if which else ""
        msg = f"no frame {what}is running on this machine (see pipeline ps)"
        raise ControlError(ControlCode.UNREACHABLE, msg)
    names = ", ".join(f"{f['frame']} (pid {f['pid']})" for f in frames)
    msg = f"several frames are running ({names}); choose one with --frame NAME, PID or RUN_DIR"
    raise ControlError(ControlCode.BAD_REQUEST, msg)
