"""The written contract between the engine and stage code. Stages never see a socket.

A stage is named in a topology by ``run: module:callable``. Its role follows from its shape:

* **source**: a function whose first parameter is ``ctx``, returning an iterable or async
  iterable (usually a generator); or a class with ``generate(self, ctx)``. Each value it yields
  is one item. A source that waits for data (tailing, polling) should yield ``None`` while idle:
  the engine then sends the partial batch, answers control messages and may stop it. ::

      def read_numbers(ctx, count=10):
          for i in range(ctx.replica, count, ctx.replicas):  # each replica takes its share
              yield {"n": i}

* **transform**: ``fn(item, ctx, **params)`` returning one item, ``None`` (nothing), or a
  ``list``/generator of items (tuples, dicts and strings are single items). ::

      def double(item, ctx):
          return {"n": item["n"] * 2}

* **stateful**: a class built with ``params`` as keyword arguments, with ``process(item, ctx)``
  (same returns as a transform), optional ``process_batch(items, ctx)`` (takes precedence, for
  hot paths), ``setup(ctx)``, and ``finish(ctx)`` which runs once at end of stream and may
  return items (e.g. the final aggregate). Set ``restartable = True`` on the class only if a
  fresh instance can rebuild its state; otherwise ``on_error: restart`` is refused.

* **MASS style**: ``fn(sockets, *args)``, called again and again; it calls ``sockets.receive()``
  and ``sockets.send(obj)`` itself (``await`` both in ``async def`` stages). A source ends its
  stream with ``raise EndOfStream``.

Any of these may be ``async``; a ``kind: async`` stage runs its replicas as coroutines on one
uvloop event loop in a worker process.
"""

from __future__ import annotations

import enum
import importlib
import inspect
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.routing import DEFAULT_PARTITIONS, partition_of


class Batch(list):  # type: ignore[type-arg]
    """Many records yielded by a source at once: ``yield Batch(records)``.

    (A plain list yielded by a source is one item; a ``Batch`` is its records.)
    """


class Role(enum.Enum):
    SOURCE = "source"
    TRANSFORM = "transform"
    STATEFUL = "stateful"
    MASS = "mass"


class Context:
    """What a stage knows about where it runs. One per replica."""

    def __init__(
        self,
        stage: str,
        replica: int,
        replicas: int,
        run_dir: Path,
        params: Mapping[str, Any] | None = None,
    ) -> None:
        self.stage = stage
        self.replica = replica
        self.replicas = replicas
        self.run_dir = run_dir
        self.params: Mapping[str, Any] = dict(params or {})
        self.log = logging.getLogger(f"pipeline.stage.{stage}")
        self._stopping = False
        self.incomplete: list[tuple[str, str]] = []
        #: what went wrong without failing the run (``warn``), for the run summary
        self.warnings: list[str] = []
        #: how far this replica is through its input: (done, total, unit); see ``progress``
        self.done: tuple[float, float, str] = (0.0, 0.0, "")
        #: key partitions of the stage's input (keyed stages; see ``partition``)
        self.partitions = DEFAULT_PARTITIONS

    @property
    def stopping(self) -> bool:
        """True once the run is draining: a source should stop yielding soon."""
        return self._stopping

    def input_incomplete(self, what: str, reason: str) -> None:
        """Record that part of an input could not be read (the run then exits 3).

        ``what`` names the input (a file, a URL), ``reason`` says how far it got and why.
        """
        self.incomplete.append((what, reason))
        self.log.warning("%s: %s", what, reason)

    def warn(self, message: str) -> None:
        """Say something the run's summary must show though the run goes on: a fallback
        taken, a figure that could not be found. Printed as ``warning: STAGE: message`` at
        the end of the run and listed under ``warnings`` in ``summary.json``; the exit code
        is not changed."""
        self.warnings.append(message)
        self.log.warning("%s", message)

    def partition(self, key: Any) -> int:
        """The partition of ``key``: what ``export_state`` is asked for, in a keyed stage."""
        return partition_of(key, self.partitions)

    def progress(self, done: float, total: float, unit: str = "") -> None:
        """Say how far this replica is through its input (``done`` of ``total``, e.g.
        bytes of its files): the live view of a run shows a bar and the time left."""
        self.done = (float(done), float(total), unit)

    def __repr__(self) -> str:
        return f"Context(stage={self.stage!r}, replica={self.replica}/{self.replicas})"


def where(obj: object) -> str:
    """``module:qualname (file:line)`` of a user callable, for error messages."""
    target = getattr(obj, "__func__", obj)
    module = getattr(target, "__module__", "?")
    name = getattr(target, "__qualname__", repr(target))
    try:
        file = inspect.getsourcefile(target)  # type: ignore[arg-type]
        _, line = inspect.getsourcelines(target)  # type: ignore[arg-type]
    except (OSError, TypeError):
        return f"{module}:{name}"
    return f"{module}:{name} ({file}:{line})"


class ResolveError(Exception):
    """``run`` does not name an importable callable."""


def resolve(ref: str) -> Any:
    """Import ``module:qualname`` and return the object."""
    module_name, sep, qualname = ref.partition(":")
    if not sep or not module_name or not qualname:
        msg = f"run must look like 'package.module:callable', got {ref!r}"
        raise ResolveError(msg)
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        msg = f"cannot import module '{module_name}': {type(exc).__name__}: {exc}"
        raise ResolveError(msg) from exc
    obj: Any = module
    for part in qualname.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            msg = f"module '{module_name}' has no attribute '{qualname}'"
            raise ResolveError(msg) from None
    if not callable(obj):
        msg = f"'{ref}' is a {type(obj).__name__}, not a function or class"
        raise ResolveError(msg)
    return obj


def reference(obj: object) -> str:
    """The ``module:qualname`` by which a replica process imports ``obj``."""
    module = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", None)
    if not module or not qualname or "<" in qualname:
        msg = (
            f"{where(obj)} cannot be a stage: replicas run in their own processes and import "
            "the stage by name, so it must be a module-level function or class "
            "(not a lambda, closure or nested function)"
        )
        raise ResolveError(msg)
    return f"{module}:{qualname}"


@dataclass(frozen=True)
class StageImpl:
    """A resolved stage callable and what the engine learned from its shape."""

    obj: Any
    role: Role
    is_async: bool
    restartable: bool

    @property
    def where(self) -> str:
        return where(self.obj)


def _first_param(fn: Callable[..., Any]) -> str | None:
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return None
    for p in params:
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            return p.name
    return None


def inspect_stage(obj: Any) -> StageImpl:
    """Classify a stage callable by the contract above."""
    restartable = bool(getattr(obj, "restartable", False))
    if inspect.isclass(obj):
        if callable(getattr(obj, "process", None)) or callable(getattr(obj, "process_batch", None)):
            meth = getattr(obj, "process_batch", None) or getattr(obj, "process")  # noqa: B009
            return StageImpl(obj, Role.STATEFUL, inspect.iscoroutinefunction(meth), restartable)
        if callable(getattr(obj, "generate", None)):
            gen = getattr(obj, "generate")  # noqa: B009
            is_async = inspect.isasyncgenfunction(gen) or inspect.iscoroutinefunction(gen)
            return StageImpl(obj, Role.SOURCE, is_async, restartable)
        msg = f"class {where(obj)} has neither process(item, ctx) nor generate(ctx)"
        raise ResolveError(msg)
    first = _first_param(obj)
    is_async = inspect.iscoroutinefunction(obj) or inspect.isasyncgenfunction(obj)
    if first == "ctx":
        return StageImpl(obj, Role.SOURCE, is_async, restartable)
    if first == "sockets":
        return StageImpl(obj, Role.MASS, is_async, restartable)
    if first is None:
        msg = (
            f"{where(obj)} takes no positional parameter: a source takes (ctx, ...), "
            "a transform (item, ctx, ...), a MASS-style stage (sockets, ...)"
        )
        raise ResolveError(msg)
    return StageImpl(obj, Role.TRANSFORM, is_async, restartable)


def check_params(
    impl: StageImpl, params: Mapping[str, Any], args: tuple[Any, ...] = ()
) -> str | None:
    """Why ``params`` (and MASS ``args``) do not fit the callable, or None if they do."""
    target = impl.obj
    if impl.role is Role.SOURCE and inspect.isclass(target):
        leading: tuple[Any, ...] = ()
    elif impl.role is Role.STATEFUL:
        leading = ()
    elif impl.role is Role.SOURCE:
        leading = (None,)
    elif impl.role is Role.TRANSFORM:
        leading = (None, None)
    else:
        leading = (None, *args)
    try:
        sig = inspect.signature(target)
    except (TypeError, ValueError):
        return None
    try:
        sig.bind(*leading, **params)
    except TypeError as exc:
        accepted = [
            p.name
            for p in list(sig.parameters.values())[len(leading) :]
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        ]
        takes = ", ".join(accepted) if accepted else "no parameters"
        return f"params do not fit {where(target)}: {exc} (it takes: {takes})"
    return None
