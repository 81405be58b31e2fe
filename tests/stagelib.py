"""Small stages used by the engine's tests (imported by name in worker processes)."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import Batch, Columns, Context, EndOfStream


def count_to(ctx: Context, n: int = 100, keys: int = 0) -> Any:
    """{"i": i} for i < n, shared over replicas; "k" = i % keys when keys is set."""
    for i in range(ctx.replica, n, ctx.replicas):
        yield {"i": i, "k": i % keys} if keys else {"i": i}


def paced(
    ctx: Context, n: int = 1000, keys: int = 10, batch: int = 100, pause: float = 0.01
) -> Any:
    """{"i": i, "k": i % keys} for i < n in batches of ``batch``, ``pause`` seconds apart
    (a stream that lasts long enough to be operated while it runs)."""
    for start in range(0, n, batch):
        yield Batch({"i": i, "k": i % keys} for i in range(start, min(n, start + batch)))
        deadline = time.monotonic() + pause
        while time.monotonic() < deadline:
            yield None
            time.sleep(pause / 4)


def ticking(ctx: Context, every: float = 0.01) -> Any:
    """An unbounded source: one record per tick, None while idle, until stopped."""
    i = 0
    while True:
        yield {"i": i}
        i += 1
        deadline = time.monotonic() + every
        while time.monotonic() < deadline:
            time.sleep(every / 4)
            yield None


def arrays(ctx: Context, n: int = 10, size: int = 1024) -> Any:
    for i in range(n):
        yield np.full(size, i, dtype=np.int64)


def columns(ctx: Context, batches: int = 5, rows: int = 100, keys: int = 7) -> Any:
    for b in range(batches):
        i = np.arange(b * rows, (b + 1) * rows, dtype=np.int64)
        yield Columns(i=i, k=i % keys, v=i.astype(np.float64) / 2)


def double(item: dict[str, Any], ctx: Context) -> dict[str, Any]:
    return {**item, "i": item["i"] * 2}


async def add_one(item: dict[str, Any], ctx: Context) -> dict[str, Any]:
    return {**item, "i": item["i"] + 1}


def explode(item: dict[str, Any], ctx: Context, n: int = 3) -> Any:
    for j in range(n):
        yield {**item, "j": j}


def keep_even(item: dict[str, Any], ctx: Context) -> dict[str, Any] | None:
    return item if item["i"] % 2 == 0 else None


def tag_replica(item: Any, ctx: Context) -> Any:
    if isinstance(item, Columns):
        return item.with_columns(replica=np.full(len(item), ctx.replica))
    return {**item, "replica": ctx.replica, "pid": os.getpid()}


def slow(item: Any, ctx: Context, seconds: float = 0.01) -> Any:
    time.sleep(seconds)
    return item


def fail_on(item: dict[str, Any], ctx: Context, value: int = 13) -> dict[str, Any]:
    if item["i"] == value:
        msg = f"item {value} is bad"
        raise ValueError(msg)
    return item


def fail_once(item: dict[str, Any], ctx: Context, value: int, marker: str) -> dict[str, Any]:
    """Raises on ``value`` the first time only (a marker file remembers)."""
    if item["i"] == value and not os.path.exists(marker):
        Path(marker).write_text("failed once")
        msg = f"transient failure on {value}"
        raise RuntimeError(msg)
    return item


def die_once(item: dict[str, Any], ctx: Context, value: int, marker: str) -> dict[str, Any]:
    """Kills its own process on ``value`` the first time (SIGKILL, no goodbye)."""
    if item["i"] == value and not os.path.exists(marker):
        Path(marker).write_text("killed once")
        os.kill(os.getpid(), signal.SIGKILL)
    return item


def hold(item: Any, ctx: Context, seconds: float = 1.0) -> Any:
    time.sleep(seconds)
    return item


class Collect:
    """Writes everything it got to ``<folder>/<stage>-<replica>-<pid>.json`` at the end."""

    def __init__(self, folder: str, tag: bool = False, seconds: float = 0.0) -> None:
        self.folder = Path(folder)
        self.tag = tag
        self.seconds = seconds
        self.items: list[Any] = []

    def process_batch(self, items: list[Any], ctx: Context) -> None:
        if self.seconds:
            time.sleep(self.seconds * len(items))
        for item in items:
            if isinstance(item, Columns):
                rows = {n: a.tolist() for n, a in item.items()}
                self.items.append({"columns": rows})
            elif isinstance(item, np.ndarray):
                self.items.append({"array": item.tolist()})
            else:
                self.items.append({**item, "at": ctx.replica} if self.tag else item)

    def finish(self, ctx: Context) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{ctx.stage}-{ctx.replica}-{os.getpid()}.json"
        path.write_text(json.dumps(self.items))


class Total:
    """Sums field ``i`` per key ``k``; emits {"k", "sum", "n"} at the end."""

    def __init__(self) -> None:
        self.sums: dict[int, list[int]] = {}

    def process(self, item: dict[str, Any], ctx: Context) -> None:
        s = self.sums.setdefault(item["k"], [0, 0])
        s[0] += item["i"]
        s[1] += 1

    def finish(self, ctx: Context) -> list[dict[str, Any]]:
        return [
            {"k": k, "sum": s, "n": n, "replica": ctx.replica} for k, (s, n) in self.sums.items()
        ]


class WarnAtEnd(Total):
    """A ``Total`` that warns once at the end (an async ``finish``, as a stage that does I/O
    there would have)."""

    async def finish(self, ctx: Context) -> list[dict[str, Any]]:  # type: ignore[override]
        ctx.warn(f"replica {ctx.replica} saw {sum(n for _, n in self.sums.values())} records")
        return Total.finish(self, ctx)


class NotRestartable:
    def process(self, item: Any, ctx: Context) -> Any:
        return item


class Rebuildable:
    restartable = True

    def process(self, item: Any, ctx: Context) -> Any:
        return item


def mass_numbers(sockets: Any, count: int = 50) -> None:
    if sockets.sent >= count:
        raise EndOfStream
    sockets.send({"i": sockets.sent})


def mass_double(sockets: Any) -> None:
    data = sockets.receive()
    sockets.send({"i": data["i"] * 2})


async def mass_async_numbers(sockets: Any, count: int = 50) -> None:
    if sockets.sent >= count:
        raise EndOfStream
    await sockets.send({"i": sockets.sent})


async def mass_async_plus(sockets: Any) -> None:
    data = await sockets.receive()
    await sockets.send({"i": data["i"] + 1})


def read_collected(folder: Path, stage: str | None = None) -> list[Any]:
    items: list[Any] = []
    for path in sorted(Path(folder).glob("*.json")):
        if stage is None or path.name.startswith(f"{stage}-"):
            items.extend(json.loads(path.read_text()))
    return items


def exploding_source(ctx: Context) -> Any:
    yield from ({"i": i} for i in range(5))
    msg = "disk on fire"
    raise RuntimeError(msg)


def always_die(item: dict[str, Any], ctx: Context, value: int) -> dict[str, Any]:
    if item["i"] == value:
        os.kill(os.getpid(), signal.SIGKILL)
    return item


def opaque_on(item: dict[str, Any], ctx: Context, value: int = 13) -> Any:
    """Returns something the wire cannot carry for ``value``."""
    return {"i": item["i"], "x": object()} if item["i"] == value else item


def drop_key_on(item: dict[str, Any], ctx: Context, value: int = 13) -> Any:
    """Loses the routing key "k" for ``value``."""
    return {"i": item["i"]} if item["i"] == value else {**item, "k": item["i"] % 3}


def tagged(ctx: Context, n: int, tag: str) -> Any:
    for i in range(n):
        yield {"i": i, "tag": tag}


def mass_take_three(sockets: Any) -> None:
    """Ends its stream after three items, whatever else comes."""
    if sockets.received == 3:
        raise EndOfStream
    sockets.send(sockets.receive())


async def mass_async_take_three(sockets: Any) -> None:
    if sockets.received == 3:
        raise EndOfStream
    await sockets.send(await sockets.receive())


class TotalHandover(Total):
    """``Total`` that can hand the state of key partitions over (scalable while keyed)."""

    def export_state(self, partitions: set[int], ctx: Context) -> list[list[Any]]:
        out = [[k, s] for k, s in self.sums.items() if ctx.partition(k) in partitions]
        for k, _ in out:
            del self.sums[k]
        return out

    def import_state(self, state: list[list[Any]], ctx: Context) -> None:
        for k, (s, n) in state:
            mine = self.sums.setdefault(k, [0, 0])
            mine[0] += s
            mine[1] += n
