"""Imported once by the forkserver that starts the workers (never by the supervisor).

It preloads the worker code, so a replica starts in milliseconds, and what the stages ask
for (``launcher.preload``: stage modules, and what they name in ``WORKER_PRELOAD``). It
makes the server ignore SIGTERM and SIGHUP: sent to the whole process group
(``kill -- -PGID``, a batch scheduler, a closed terminal) they must reach the supervisor as
a request to drain, not kill the server whose pipes tell the supervisor how each worker
ended.
"""

from __future__ import annotations

import gc
import importlib
import os
import signal
import sys

import pipeline.worker  # noqa: F401 - preloaded for the workers
from pipeline.launcher import PRELOAD_ENV

signal.signal(signal.SIGTERM, signal.SIG_IGN)
signal.signal(signal.SIGHUP, signal.SIG_IGN)


def _load(entry: str) -> None:
    module, _, function = entry.partition(":")
    try:
        loaded = importlib.import_module(module)
        if function:
            getattr(loaded, function)()
    except Exception as exc:  # the worker meets the same problem and reports it
        print(f"pipeline: could not preload {entry} for the workers: {exc!r}", file=sys.stderr)


for _entry in filter(None, os.environ.get(PRELOAD_ENV, "").split(",")):
    _load(_entry)

# Everything loaded so far lives as long as the workers: out of the collector's sight, so a
# worker's collections never write to (and so copy) the pages it shares with this server.
gc.collect()
gc.freeze()
