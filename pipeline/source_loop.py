"""How a source's items become batches: by count, buffer bytes, or age (``batch.linger``).

The source's iterator is pulled inline on the replica's event loop; after each batch the
replica waits for credit if the downstream stage is behind (backpressure reaches the source
here), and stops pulling as soon as it is asked to stop. Yielding ``None`` tells the engine
the source is idle: the partial batch goes out and control messages are answered.
"""

from __future__ import annotations

import inspect
import logging
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.columns import Columns
from pipeline.contract import Batch
from pipeline.failures import ReplicaFailure

if TYPE_CHECKING:
    from pipeline.replica import Replica

log = logging.getLogger("pipeline.replica")


async def run_source(r: Replica) -> None:
    """Pull the source to its end (or until stopped) and send everything it yielded."""

    it: Any = None
    leftover: list[Any] = []
    try:
        it = r.code.source()
        if inspect.isawaitable(it):
            it = await it
        await _pull(r, it, leftover)
    except ReplicaFailure:
        raise  # already judged (outputs that could not be sent)
    except Exception as exc:
        if r.spec.on_error != "skip":
            raise ReplicaFailure(exc, "source") from exc
        r.c.errors += 1
        r.ctx.input_incomplete(
            r.spec.name, f"the source raised and ended early: {type(exc).__name__}: {exc}"
        )
        log.error("%s: source failed; its stream ends here (on_error: skip)", r.name, exc_info=exc)
    finally:
        close = getattr(it, "aclose", None) or getattr(it, "close", None)
        if close is not None:
            closing = close()  # runs the generator's finally blocks now
            if inspect.isawaitable(closing):
                await closing
    if leftover:  # what was yielded before the end, or before a skipped failure
        await _emit(r, leftover)


async def _pull(r: Replica, it: Any, batch: list[Any]) -> None:
    """Fill ``batch`` from the source and send it whenever it is due; what is left in
    ``batch`` when this returns or raises has not been sent."""
    size, max_bytes, linger = r.spec.batch.size, r.spec.batch.bytes, r.spec.batch.linger
    is_async = hasattr(it, "__anext__")
    sync_it = None if is_async else iter(it)
    clock = time.perf_counter
    nbytes = 0
    started = clock()
    while not r.stopping:
        if not r.flowing.is_set():  # paused: send what is made, then wait to be resumed
            if batch:
                r.c.busy += clock() - started
                await _emit(r, batch)
                nbytes = 0
            await paused(r)
            started = clock()
            continue
        try:
            item = await it.__anext__() if is_async else next(sync_it)  # type: ignore[arg-type]
        except (StopIteration, StopAsyncIteration):
            break
        if item is None:  # the source is idle: send what it has
            if batch:
                r.c.busy += clock() - started
                await _emit(r, batch)
                nbytes = 0
            await r.breathe()
            started = clock()
            continue
        t = type(item)
        if t is Batch:
            batch.extend(item)
        else:
            batch.append(item)
            if t is Columns or t is np.ndarray:
                nbytes += item.nbytes
        n = len(batch)
        # the clock is read for every item of a small batch (a slow source), and then every
        # 64th (a fast one reaches its size long before the linger)
        if (
            n >= size
            or nbytes >= max_bytes
            or ((n < 64 or not n & 63) and clock() - started >= linger)
        ):
            r.c.busy += clock() - started
            await _emit(r, batch)
            nbytes = 0
            started = clock()
    r.c.busy += clock() - started


async def paused(r: Replica) -> None:
    """Wait while the run is paused, delivering what is in flight meanwhile."""
    while not r.flowing.is_set() and not r.stopping:
        r.flush_buffers(force=True)
        r.pump()
        r.flush_acks()
        await r.wait()


async def _emit(r: Replica, batch: list[Any]) -> None:
    """Send ``batch`` (waiting for credit), then empty it for reuse by the caller."""
    r.emit(batch, None)
    batch.clear()
    r.flush_buffers(force=True)
    await r.send_all()
    await r.breathe()
