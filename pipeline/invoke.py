"""Calling a stage's code by the contract (``pipeline.contract``), with no transport.

Shared by the replicas and the in-memory test harness, so tests call stage code exactly the
way a running pipeline does.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from pipeline.columns import Columns
from pipeline.contract import Context, Role, StageImpl


class UserCodeError(Exception):
    """Stage code raised; ``phase`` says where (setup, process, finish, source)."""

    def __init__(self, exc: BaseException, phase: str) -> None:
        self.exc = exc
        self.phase = phase
        super().__init__(f"{phase}: {type(exc).__name__}: {exc}")


async def call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call sync or async code."""
    result = fn(*args, **kwargs)
    if inspect.isawaitable(result):
        result = await result
    return result


async def collect(result: Any, out: list[Any]) -> None:
    """Append what stage code returned: None, one item, a list, or an (async) iterator.
    Dicts, tuples, strings and ``Columns`` are single items."""
    if result is None:
        return
    if type(result) is list or isinstance(result, Iterator):
        out.extend(result)
    elif hasattr(result, "__anext__"):
        async for x in result:
            out.append(x)
    else:
        out.append(result)


class StageCode:
    """One replica's instance of a stage's code."""

    def __init__(self, impl: StageImpl, params: Mapping[str, Any], ctx: Context) -> None:
        self.impl = impl
        self.params = dict(params)
        self.ctx = ctx
        self.instance: Any = None

    async def setup(self) -> None:
        if not inspect.isclass(self.impl.obj):
            return
        try:
            self.instance = self.impl.obj(**self.params)
            setup = getattr(self.instance, "setup", None)
            if setup is not None:
                await call(setup, self.ctx)
        except Exception as exc:
            raise UserCodeError(exc, "setup") from exc

    def source(self) -> Any:
        """The iterable (or async iterable, or awaitable of one) a source produces."""
        if self.instance is not None:
            return self.instance.generate(self.ctx)
        return self.impl.obj(self.ctx, **self.params)

    async def process(self, items: list[Any]) -> list[Any]:
        """Outputs of a transform or stateful stage for one batch (exceptions propagate)."""
        out: list[Any] = []
        ctx = self.ctx
        if self.impl.role is Role.STATEFUL:
            batch_fn = getattr(self.instance, "process_batch", None)
            if batch_fn is not None:
                await collect(await call(batch_fn, items, ctx), out)
                return out
            fn = self.instance.process
            params: dict[str, Any] = {}
        else:
            fn = self.impl.obj
            params = self.params
        if self.impl.is_async or inspect.isasyncgenfunction(fn):
            for item in items:
                await collect(await call(fn, item, ctx, **params), out)
            return out
        # The hot path: plain functions called inline, one call per item.
        append, extend = out.append, out.extend
        for item in items:
            r = fn(item, ctx, **params) if params else fn(item, ctx)
            if r is None:
                continue
            t = type(r)
            if t is list:
                extend(r)
            elif t is dict or t is Columns or not isinstance(r, Iterator):
                append(r)
            else:
                extend(r)
        return out

    @property
    def hands_over(self) -> bool:
        """The stage can give away and take in the state of key partitions (``export_state``
        and ``import_state``), so a keyed stage can be scaled while it runs."""
        obj = self.impl.obj
        return callable(getattr(obj, "export_state", None)) and callable(
            getattr(obj, "import_state", None)
        )

    async def export_state(self, partitions: list[int]) -> Any:
        """The state of ``partitions``, which this replica gives away (and forgets)."""
        try:
            return await call(self.instance.export_state, set(partitions), self.ctx)
        except Exception as exc:
            raise UserCodeError(exc, "handover") from exc

    async def import_state(self, state: Any) -> None:
        """Take in state another replica gave away."""
        try:
            await call(self.instance.import_state, state, self.ctx)
        except Exception as exc:
            raise UserCodeError(exc, "handover") from exc

    async def finish(self) -> list[Any]:
        out: list[Any] = []
        finish = getattr(self.instance, "finish", None) if self.instance is not None else None
        if finish is None:
            return out
        try:
            await collect(await call(finish, self.ctx), out)
        except Exception as exc:
            raise UserCodeError(exc, "finish") from exc
        return out
