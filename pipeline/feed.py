"""Following a frame's published status on an asyncio event loop (the web monitor and the
MQTT bridge): each status as it arrives, until the frame has stopped."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from pipeline.transport import StatusSubscriber

log = logging.getLogger("pipeline")

#: seconds without a status after which the frame is asked whether it is still there
SILENCE = 3.0


async def follow(
    sub: StatusSubscriber, gone: Callable[[], Awaitable[bool]], silence: float = SILENCE
) -> AsyncIterator[dict[str, Any]]:
    """Each status published on ``sub``; the iteration ends when no status has come for
    ``silence`` seconds and ``gone()`` says the frame has stopped."""
    loop = asyncio.get_running_loop()
    readable = asyncio.Event()
    fd = sub.fileno()
    loop.add_reader(fd, readable.set)
    last = time.monotonic()
    try:
        while True:
            # the descriptor is edge-triggered: poll now and then as well
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(readable.wait(), 0.5)
            readable.clear()
            raw = sub.receive(0)
            if raw is not None:
                last = time.monotonic()
                try:
                    status = json.loads(raw)
                except ValueError:
                    log.warning("a status that is not JSON was published; ignored")
                    continue
                if isinstance(status, dict):
                    yield status
            elif time.monotonic() - last > silence:
                if await gone():
                    return
                last = time.monotonic()
    finally:
        loop.remove_reader(fd)
