"""One gathering: collect, package, queue in the outbox, ship, and move the keys on.

In order, holding the outbox's lock (one gathering at a time; another one does nothing):

1. each registered collector is called for its window: from where its key was delivered
   or already packaged (waiting in the outbox from an earlier run) up to ``until``
   (``stages.ingress.watermarks``), or for each window its slicing function gives; a
   collector that raises is a failed collection, reported in the tarballs' status file
   and holding its key back, never silently left out;
2. the collections are packaged (``stages.ingress.package``; a collector with nothing new
   adds nothing) and each tarball is queued in the outbox, described, before it is sent;
3. what waits is sent as it is queued, the outbox's older tarballs first, ``concurrency``
   uploads at a time, each retried with backoff (``stages.ingress.shipper``); a delivered
   tarball leaves the outbox and moves its keys on; a refused one is kept apart and holds
   its keys back; one still failing when the retries run out waits for the next run;
4. the keys' times are saved after each reply.

A dry run builds the tarballs into ``<outbox>/dry-run/``, keeps them, sends nothing and
moves no key.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import shutil
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stages.ingress.outbox import Outbox, Waiting
from stages.ingress.package import Built, Collection, Packer
from stages.ingress.registry import Collector, Registry
from stages.ingress.shipper import Reply, Shipper
from stages.ingress.watermarks import Watermarks

#: 200 MiB of uncompressed data a tarball, as Red Hat's collector bounds it
MAX_DATA_SIZE = 200 * 1048576


@dataclass
class Gathering:
    """What a gathering did."""

    built: list[Path] = field(default_factory=list)
    replies: list[Reply] = field(default_factory=list)
    collections: list[Collection] = field(default_factory=list)
    waiting: list[Path] = field(default_factory=list)
    refused: list[Path] = field(default_factory=list)
    dry_run: bool = False

    @property
    def delivered(self) -> list[Reply]:
        return [r for r in self.replies if r.delivered]

    @property
    def failed(self) -> list[Collection]:
        return [c for c in self.collections if c.status == "failed"]

    def summary(self, url: str) -> str:
        if self.dry_run:
            return f"dry run: {len(self.built)} tarball(s) built and kept, nothing sent"
        text = (f"{len(self.built)} tarball(s) built; {len(self.delivered)} delivered to "
                f"{url}")  # fmt: skip
        if self.waiting:
            text += f"; {len(self.waiting)} waiting in the outbox for the next run"
        if self.refused:
            text += f"; {len(self.refused)} refused (kept apart)"
        return text


def _collections(
    c: Collector,
    windows: list[tuple[dt.datetime, dt.datetime]],
    kwargs: Mapping[str, Any],
    staging: Path,
    max_data_size: int,
) -> Iterator[Collection]:
    """Call one collector for each of its windows."""
    for since, until in windows:
        started = dt.datetime.now(dt.UTC)
        t0 = time.monotonic()
        what: dict[str, Any]
        try:
            got = c.fn(since=since, until=until, max_data_size=max_data_size,
                       full_path=staging, **kwargs)  # fmt: skip
        except Exception as exc:  # a collector's failure is reported, not fatal
            status, what = "failed", {"error": f"{type(exc).__name__}: {exc}"}
        else:
            if got is None or got in ([], {}):
                status, what = "empty", {}
            elif c.format == "json":
                status, what = "ok", {"data": got}
            else:  # the packer cuts a CSV too large for one tarball into parts
                paths = [got] if isinstance(got, str | Path) else list(got)
                status, what = "ok", {"files": [Path(p) for p in paths]}
        yield Collection(c.key, c.version, c.format, since, until, started,
                         time.monotonic() - t0, status, shipping_group=c.shipping_group,
                         sliced=c.slicing is not None, **what)  # fmt: skip


def describe(c: Collection, full: bool = False) -> dict[str, Any]:
    """A collection as the outbox and the watermarks keep it (``full``: gathered by a full
    sync, so its delivery renews the key's full-sync time)."""
    return {"key": c.key, "since": c.since.isoformat(), "until": c.until.isoformat(),
            "status": c.status, "sliced": c.sliced, "full": full}  # fmt: skip


def _full_sync_due(c: Collector, marks: Watermarks, until: dt.datetime) -> bool:
    """Whether a sliced collector with a full-sync interval is due one: its last full
    sync (``<key>_full``) is missing, dropped by a failure, or older than the interval."""
    if c.slicing is None or not c.full_sync_interval_days:
        return False
    last = marks.entries.get(f"{c.key}_full")
    return last is None or until - last > dt.timedelta(days=c.full_sync_interval_days)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


class Gatherer:
    """Gathers ``registry``'s collectors into ``outbox`` and ships to ``shipper``'s URL."""

    def __init__(
        self,
        registry: Registry,
        outbox: str | Path,
        shipper: Shipper,
        max_data_size: int = MAX_DATA_SIZE,
        name_base: str = "pipeline-results",
        collection_type: str = "scheduled",
    ) -> None:
        registry.check()
        self.registry = registry
        self.outbox = Outbox(outbox)
        self.shipper = shipper
        self.max_data_size = max_data_size
        self.name_base = name_base
        self.collection_type = collection_type

    async def run(
        self,
        until: dt.datetime | None = None,
        dry_run: bool = False,
        on_built: Callable[[Path], None] | None = None,
        **kwargs: Any,
    ) -> Gathering:
        """One gathering (see the module docstring); ``kwargs`` go to every collector
        (e.g. ``report_dir``); ``on_built`` is told of each tarball queued.

        Collecting and packaging run in a thread; each tarball is sent as soon as it is
        queued (a sliced collection's at once, as Red Hat's collector ships them), by
        ``concurrency`` uploads at a time, the outbox's older tarballs first."""
        until = until or dt.datetime.now(dt.UTC)
        done = Gathering(dry_run=dry_run)
        with self.outbox.lock():
            marks = Watermarks.load(self.outbox.root / "state.json")
            earlier = self.outbox.pending()
            flight = _Flight(marks, done, self.outbox)
            for w in earlier if not dry_run else []:
                flight.add(w)
            waiting = [c for w in earlier for c in w.meta.get("collections", [])]
            staging = self.outbox.work / f"stage-{time.time_ns()}"
            staging.mkdir(parents=True)
            loop = asyncio.get_running_loop()

            def collected(collections: list[Collection]) -> None:  # in the packaging thread
                loop.call_soon_threadsafe(flight.collected, collections)

            def queued(built: list[tuple[Built, Waiting | None]]) -> None:  # likewise
                for b, _ in built:
                    done.built.append(b.path)
                    if on_built:
                        on_built(b.path)
                loop.call_soon_threadsafe(flight.queued, [w for _, w in built if w])

            async with self.shipper:
                workers = [asyncio.create_task(self._worker(flight))
                           for _ in range(0 if dry_run else self.shipper.concurrency)]  # fmt: skip
                try:
                    await asyncio.to_thread(self._package, marks, waiting, until, staging,
                                            dry_run, kwargs, collected, queued)  # fmt: skip
                finally:
                    shutil.rmtree(staging, ignore_errors=True)
                    await asyncio.sleep(0)  # the last callbacks from the thread run first
                    flight.close()
                    await asyncio.gather(*workers)
            if not dry_run:
                marks.last_gather = until
                marks.save()
        done.waiting = [w.path for w in self.outbox.pending()]
        return done

    def _package(
        self,
        marks: Watermarks,
        waiting: list[dict[str, Any]],
        until: dt.datetime,
        staging: Path,
        dry_run: bool,
        kwargs: Mapping[str, Any],
        collected: Callable[[list[Collection]], None],
        queued: Callable[[list[tuple[Built, Waiting | None]]], None],
    ) -> None:
        """Collect and package; each tarball queued in the outbox (or kept in the dry-run
        folder) as soon as it is built. Collections with nothing in them are reported to
        the keys' times but not packaged: a gathering with nothing new sends nothing."""
        args = {"collection_type": "dry-run" if dry_run else self.collection_type, **kwargs}
        target = self.outbox.root / "dry-run" if dry_run else self.outbox.work
        target.mkdir(parents=True, exist_ok=True)
        config = self.registry.config()
        (conf,) = _collections(config, [(marks.since(config.key, until), until)], args, staging,
                               self.max_data_size)  # fmt: skip
        packer = Packer(self.max_data_size, target, self.name_base, until, conf)
        full: set[str] = set()  # the keys gathered by a full sync this time

        def queue(built: list[Built]) -> None:
            if not built:
                return
            if dry_run:
                queued([(b, None) for b in built])
                return
            queued([(b, self.outbox.put(b.path, {"sha256": b.sha256, "size": b.size,
                                                 "collections": [describe(c, c.key in full)
                                                                 for c in b.collections]}))
                    for b in built])  # fmt: skip

        for c in self.registry.collectors():
            if c.config:
                continue
            if c.slicing is not None and _full_sync_due(c, marks, until):
                full.add(c.key)
                start = marks.since(c.key, until, waiting)
                windows = list(c.slicing(c.key, start, full_sync_enabled=True))
            elif c.slicing is not None:
                start = marks.since(c.key, until, waiting)
                windows = list(c.slicing(c.key, start, since=start, until=until))
            else:
                windows = [(marks.since(c.key, until, waiting), until)]
            for one in _collections(c, windows, args, staging, self.max_data_size):
                collected([one])
                if one.status != "empty":
                    queue(packer.add(one))
        queue(packer.finish())

    async def _worker(self, flight: _Flight) -> None:
        """Send tarballs as they are queued until the flight is closed and empty."""
        while (w := await flight.next()) is not None:
            reply = await self.shipper.ship(w.path, w.sha256)
            flight.settle(w, reply)


class _Flight:
    """The tarballs of a gathering on their way: queued, sent, settled one by one, in the
    event loop (the packaging thread hands its news over with ``call_soon_threadsafe``)."""

    def __init__(self, marks: Watermarks, done: Gathering, outbox: Outbox) -> None:
        self.marks, self.done, self.outbox = marks, done, outbox
        self.queue: asyncio.Queue[Waiting | None] = asyncio.Queue()
        self.unsettled: dict[str, Waiting] = {}
        self.closed = False

    def add(self, w: Waiting) -> None:
        self.unsettled[w.path.name] = w
        self.queue.put_nowait(w)

    def collected(self, collections: list[Collection]) -> None:
        """Failures are noted (and saved) before any later window of their key is sent."""
        self.done.collections += collections
        self.marks.gathered([describe(c) for c in collections])
        if any(c.status == "failed" for c in collections):
            self.marks.save()

    def queued(self, waiting: list[Waiting]) -> None:
        for w in waiting:  # all of a batch in flight before any of it is settled
            self.unsettled[w.path.name] = w
        for w in waiting:
            self.queue.put_nowait(w)

    async def next(self) -> Waiting | None:
        w = await self.queue.get()
        if w is None:
            self.queue.put_nowait(None)  # for the other workers
        return w

    def close(self) -> None:
        self.queue.put_nowait(None)

    def settle(self, w: Waiting, r: Reply) -> None:
        """Act on one tarball's reply, and save the keys' times at once (a crash later
        loses nothing, and sends nothing twice)."""
        self.done.replies.append(r)
        collections = w.meta.get("collections", [])
        if r.delivered:
            del self.unsettled[w.path.name]
            held = [
                c for other in self.unsettled.values() for c in other.meta.get("collections", [])
            ]
            self.outbox.delivered(w, r.status)
            self.marks.delivered(collections, waiting=held)
        elif r.outcome == "refused":
            del self.unsettled[w.path.name]
            self.done.refused.append(self.outbox.refused(w, r.status, r.body))
            # its data never arrived: its windows are gathered again, as failed ones are
            self.marks.gathered([{**c, "status": "failed"} for c in collections])
        self.marks.save()
