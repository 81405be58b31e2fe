"""The ``ship`` stage: at the end of a run, send its reports to an ingress service.

It waits for the stages before it to finish (what they pass on is not shipped), then
runs one gathering (``stages.ingress.gather``) over ``report_dir``: the registered
collectors' data packaged into tarballs, queued in the outbox, and POSTed to ``url``.
An ingress that cannot be reached does not fail the run: the retries stop at
``retry.deadline`` (default 15 s), the tarballs wait in the outbox for the next run, and
the run's summary says how many. A refused tarball (a 4xx) is a warning too, kept in
``<outbox>/refused/`` with the answer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pipeline import Context
from stages.ingress.outbox import Busy
from stages.ingress.package import PackageError
from stages.ingress.protocol import DEFAULT_URL
from stages.ingress.settings import DEFAULT_COLLECTORS, gatherer


class Ship:
    """Ship the run's reports (see the module docstring).

    ``report_dir``: what the collectors read; ``url``: the ingress upload URL (``off``:
    ship nothing); ``outbox``
    (default ``<report_dir>/outbox``); ``collectors``: modules whose ``register`` calls
    make the collector registry; ``dry_run``: build and keep the tarballs, send nothing;
    ``auth``: ``{mode: none|basic|token|cert|identity, user, password_env, token_env,
    cert, key, ca}``; ``headers``; ``content_type``; ``timeout`` per upload (s);
    ``retry``: ``{attempts, base, cap, deadline}``; ``concurrency``: uploads at once;
    ``max_data_size``: uncompressed bytes a tarball."""

    def __init__(
        self,
        report_dir: str,
        url: str | bool | None = DEFAULT_URL,
        outbox: str | None = None,
        collectors: Sequence[str] = DEFAULT_COLLECTORS,
        dry_run: bool = False,
        auth: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        content_type: str | None = None,
        timeout: float = 10.0,
        retry: Mapping[str, Any] | None = None,
        concurrency: int = 4,
        max_data_size: int | None = None,
    ) -> None:
        self.report_dir = Path(report_dir)
        self.url = "off" if url is False or url is None else str(url)  # YAML reads off as false
        self.dry_run = bool(dry_run)
        extra: dict[str, Any] = {}
        if content_type:
            extra["content_type"] = content_type
        if max_data_size:
            extra["max_data_size"] = int(max_data_size)
        self.gatherer = gatherer(
            outbox or str(self.report_dir / "outbox"), self.url, list(collectors), auth, headers,
            timeout=timeout, retry={"deadline": 15.0, **dict(retry or {})},
            concurrency=concurrency, **extra,
        )  # fmt: skip

    def process(self, item: Any, ctx: Context) -> None:
        """What the stages before it pass on is not shipped: their reports are."""

    async def finish(self, ctx: Context) -> None:
        if self.url in ("", "off") and not self.dry_run:
            ctx.log.info("shipping is off (url: off): the reports stay where they are")
            return
        try:
            done = await self.gatherer.run(dry_run=self.dry_run, report_dir=self.report_dir)
        except (Busy, PackageError) as exc:
            ctx.warn(f"nothing shipped: {exc}")
            return
        ctx.log.info("%s", done.summary(self.url))
        for c in done.failed:
            ctx.warn(f"collector {c.key} failed for {c.since:%Y-%m-%d %H:%M} .. "
                     f"{c.until:%Y-%m-%d %H:%M}: {c.error}; it is reported in the tarball's "
                     "status file and gathered again next run")  # fmt: skip
        for r in done.replies:
            if not r.delivered:
                ctx.log.info("%s", r.describe())
        if done.waiting:
            last = next((r for r in reversed(done.replies) if not r.delivered), None)
            why = f" ({last.errors[-1]})" if last and last.errors else ""
            ctx.warn(f"{len(done.waiting)} tarball(s) not delivered to {self.url}{why}: they "
                     f"wait in {self.gatherer.outbox.pending_dir} and go with the next run "
                     "(or pipeline ship)")  # fmt: skip
        if done.refused:
            ctx.warn(f"{len(done.refused)} tarball(s) refused by {self.url}: kept in "
                     f"{self.gatherer.outbox.refused_dir} with the answers")  # fmt: skip
