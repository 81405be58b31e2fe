"""An in-memory harness for stage tests: a list in, a list out, no sockets, no processes.

Stage code is called exactly as a running replica calls it (``pipeline.invoke``), and any
exception it raises reaches the test unchanged.

>>> from stages.basic import split
>>> run_stage(split, [{"text": "a b"}], params={"field": "text"})
[{'word': 'a'}, {'word': 'b'}]
"""

from __future__ import annotations

import asyncio
import inspect
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from pipeline.contract import Batch, Context, Role, inspect_stage, resolve
from pipeline.errors import EndOfStream
from pipeline.invoke import StageCode, UserCodeError


class MemorySockets:
    """``sockets`` for a MASS-style stage under test."""

    def __init__(self, items: Iterable[Any], ctx: Context) -> None:
        self._items = list(items)
        self._pos = 0
        self.sent = 0
        self.received = 0
        self.out: list[Any] = []
        self.ctx = ctx
        self.stage = ctx.stage
        self.replica = ctx.replica

    def receive(self) -> Any:
        if self._pos >= len(self._items):
            raise EndOfStream
        self._pos += 1
        self.received += 1
        return self._items[self._pos - 1]

    def send(self, obj: Any, stage: str | None = None) -> None:
        self.out.append(obj)
        self.sent += 1


class AsyncMemorySockets(MemorySockets):
    async def receive(self) -> Any:
        return MemorySockets.receive(self)

    async def send(self, obj: Any, stage: str | None = None) -> None:  # type: ignore[override]
        MemorySockets.send(self, obj, stage)


def run_stage(
    stage: Callable[..., Any] | str,
    items: Iterable[Any] | None = None,
    *,
    params: Mapping[str, Any] | None = None,
    args: tuple[Any, ...] = (),
    ctx: Context | None = None,
    batch_size: int = 1000,
    limit: int | None = None,
) -> list[Any]:
    """Run a stage on ``items`` (none for a source) and return what it emitted, ``finish``
    included. ``limit`` stops a source after that many items."""
    return asyncio.run(_run(stage, items, dict(params or {}), args, ctx, batch_size, limit))


async def _run(
    stage: Callable[..., Any] | str,
    items: Iterable[Any] | None,
    params: dict[str, Any],
    args: tuple[Any, ...],
    ctx: Context | None,
    batch_size: int,
    limit: int | None,
) -> list[Any]:
    obj = resolve(stage) if isinstance(stage, str) else stage
    impl = inspect_stage(obj)
    name = getattr(obj, "__name__", "stage")
    if ctx is None:
        ctx = Context(name, 0, 1, Path(tempfile.gettempdir()), params)
    if impl.role is Role.MASS:
        return await _run_mass(obj, impl.is_async, items or (), params, args, ctx, limit)
    code = StageCode(impl, params, ctx)
    out: list[Any] = []
    try:
        await code.setup()
        if impl.role is Role.SOURCE:
            await _drain_source(code, out, limit)
        else:
            pending = list(items or ())
            for i in range(0, len(pending), batch_size):
                out.extend(await code.process(pending[i : i + batch_size]))
        out.extend(await code.finish())
    except UserCodeError as err:
        raise err.exc from None
    return out


async def _drain_source(code: StageCode, out: list[Any], limit: int | None) -> None:
    it = code.source()
    if inspect.isawaitable(it):
        it = await it
    try:
        if hasattr(it, "__anext__"):
            async for item in it:
                _take(item, out)
                if limit is not None and len(out) >= limit:
                    break
        else:
            for item in it:
                _take(item, out)
                if limit is not None and len(out) >= limit:
                    break
    finally:
        close = getattr(it, "aclose", None) or getattr(it, "close", None)
        if close is not None:
            closing = close()
            if inspect.isawaitable(closing):
                await closing


def _take(item: Any, out: list[Any]) -> None:
    if item is None:
        return
    if type(item) is Batch:
        out.extend(item)
    else:
        out.append(item)


async def _run_mass(
    fn: Callable[..., Any],
    is_async: bool,
    items: Iterable[Any],
    params: dict[str, Any],
    args: tuple[Any, ...],
    ctx: Context,
    limit: int | None,
) -> list[Any]:
    sockets = (AsyncMemorySockets if is_async else MemorySockets)(items, ctx)
    while limit is None or sockets.sent < limit:
        try:
            result = fn(sockets, *args, **params)
            if inspect.isawaitable(result):
                await result
        except EndOfStream:
            break
    return sockets.out
