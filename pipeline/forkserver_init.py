"""Imported once by the forkserver that starts the workers (never by the supervisor).

It preloads the worker code, so a replica starts in milliseconds, and makes the server
ignore SIGTERM and SIGHUP: sent to the whole process group (``kill -- -PGID``, a batch
scheduler, a closed terminal) they must reach the supervisor as a request to drain, not kill
the server whose pipes tell the supervisor how each worker ended.
"""

from __future__ import annotations

import signal

import pipeline.worker  # noqa: F401 - preloaded for the workers

signal.signal(signal.SIGTERM, signal.SIG_IGN)
signal.signal(signal.SIGHUP, signal.SIG_IGN)
