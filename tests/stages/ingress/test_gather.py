"""Gatherings shipped to the real ingress server over HTTP: every tarball arrives exactly
once through server errors, timeouts, refused connections and a crash between packaging
and upload; keys move only after a delivery."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import json
import os
import socket
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

import pytest

from stages.ingress.gather import Gatherer, Gathering
from stages.ingress.outbox import Busy
from stages.ingress.registry import Registry
from stages.ingress.shipper import Retry, Shipper
from stages.ingress.watermarks import Watermarks
from tests.conftest import REPO
from tests.stages.ingress.conftest import Server, StartIngress, request

UNTIL = dt.datetime(2026, 11, 30, 6, 0, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)
HEADER = "Volume,Group,Usage"


def _new(path: Path, kw: dict[str, Any]) -> bool:
    """Whether a report was written in the collector's window (the time ``reports`` says
    it wrote them: a window in the tests' own calendar, not the clock's)."""
    if not path.exists():
        return False
    written = dt.datetime.fromisoformat((path.parent / "written").read_text())
    return bool(kw["since"] <= written < kw["until"])


def registry(failing: bool = False) -> Registry:
    """A config, a JSON collector and a CSV one reading ``report_dir`` (and, when asked,
    one that raises)."""
    r = Registry()

    @r.register("config", "1.0", config=True)
    def config(**kw: Any) -> dict[str, Any]:
        return {"site": "test", "until": kw["until"].isoformat()}

    @r.register("totals", "1.1")
    def totals(**kw: Any) -> dict[str, Any] | None:
        path = Path(kw["report_dir"]) / "totals.json"
        return json.loads(path.read_text()) if _new(path, kw) else None

    @r.register("groups", "2.0", format="csv")
    def groups(**kw: Any) -> Path | None:
        path = Path(kw["report_dir"]) / "groups.csv"
        return path if _new(path, kw) else None

    if failing:

        @r.register("broken", "1.0")
        def broken(**kw: Any) -> dict[str, Any]:
            raise RuntimeError("the reports cannot be read")

    return r


def reports(folder: Path, rows: int = 5) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "written").write_text((UNTIL - dt.timedelta(hours=1)).isoformat())
    (folder / "totals.json").write_text(json.dumps({"groups": rows}))
    lines = [HEADER] + [f"scratch1,g{i},{i * 1000}" for i in range(rows)]
    (folder / "groups.csv").write_text("\n".join(lines) + "\n")
    return folder


def gatherer(tmp_path: Path, url: str, *, reg: Registry | None = None, retry: Retry | None = None,
             timeout: float = 5.0, max_data_size: int = 1 << 20) -> Gatherer:  # fmt: skip
    shipper = Shipper(url, retry=retry or Retry(attempts=4, base=0.05, cap=0.2),
                      timeout=timeout)  # fmt: skip
    return Gatherer(reg or registry(), tmp_path / "outbox", shipper, max_data_size)


def gather(g: Gatherer, tmp_path: Path, until: dt.datetime = UNTIL, **kw: Any) -> Gathering:
    return asyncio.run(g.run(until=until, report_dir=tmp_path / "reports", **kw))


def stored(server: Server) -> list[dict[str, Any]]:
    reply = request(server.base + "/api/ingress/v1/uploads")
    assert reply.status == 200
    found: list[dict[str, Any]] = reply.json()
    return found


def members(server: Server, entry: dict[str, Any]) -> dict[str, bytes]:
    reply = request(f"{server.base}/api/ingress/v1/uploads/{entry['id']}/payload")
    assert reply.status == 200
    with tarfile.open(fileobj=io.BytesIO(reply.body), mode="r:gz") as tar:
        out = {}
        for m in tar.getmembers():
            f = tar.extractfile(m)
            assert f is not None
            out[m.name] = f.read()
        return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def marks(tmp_path: Path) -> Watermarks:
    return Watermarks.load(tmp_path / "outbox" / "state.json")


def test_a_gathering_arrives_with_its_layout_manifest_and_status(
    tmp_path: Path, ingress_server: Server
) -> None:
    reports(tmp_path / "reports")
    done = gather(gatherer(tmp_path, ingress_server.url), tmp_path)
    assert [r.outcome for r in done.replies] == ["sent"] and done.waiting == []
    (entry,) = stored(ingress_server)
    got = members(ingress_server, entry)
    assert list(got) == ["./totals.json", "./groups.csv", "./config.json",
                         "./data_collection_status.csv", "./manifest.json"]  # fmt: skip
    assert json.loads(got["./manifest.json"]) == {
        "totals.json": "1.1", "groups.csv": "2.0", "config.json": "1.0",
        "data_collection_status.csv": "1.0"}  # fmt: skip
    assert json.loads(got["./totals.json"]) == {"groups": 5}
    assert got["./groups.csv"] == (tmp_path / "reports" / "groups.csv").read_bytes()
    status = list(csv.DictReader(io.StringIO(got["./data_collection_status.csv"].decode())))
    assert {(s["file_name"], s["status"]) for s in status} == {("totals.json", "ok"),
                                                               ("groups.csv", "ok")}  # fmt: skip
    # the keys moved to the window's end, after the delivery
    assert marks(tmp_path).entries == {"totals": UNTIL, "groups": UNTIL}


def test_a_server_error_is_retried_and_the_payload_stored_once(
    tmp_path: Path, start_ingress: StartIngress
) -> None:
    server = start_ingress("--fail-first", "2")  # 500, 500, then it works
    reports(tmp_path / "reports")
    done = gather(gatherer(tmp_path, server.url), tmp_path)
    (reply,) = done.replies
    assert (reply.outcome, reply.status, reply.attempts) == ("sent", 201, 3)
    assert len(stored(server)) == 1


def test_an_unreachable_ingress_leaves_the_tarball_waiting_and_the_keys_where_they_were(
    tmp_path: Path, start_ingress: StartIngress
) -> None:
    reports(tmp_path / "reports")
    url = f"http://127.0.0.1:{free_port()}/api/ingress/v1/upload"  # nobody listens
    done = gather(gatherer(tmp_path, url), tmp_path)
    assert [r.outcome for r in done.replies] == ["failed"] and len(done.waiting) == 1
    assert "Connect" in done.replies[0].errors[-1]
    assert marks(tmp_path).entries == {}
    # the next run (nothing new written) sends what waited, and gathers nothing twice
    server = start_ingress()
    later = UNTIL + dt.timedelta(hours=1)
    again = gather(gatherer(tmp_path, server.url), tmp_path, later)
    assert [r.outcome for r in again.replies] == ["sent"]
    assert again.built == []  # the waiting windows were not gathered a second time
    (entry,) = stored(server)
    assert json.loads(members(server, entry)["./totals.json"]) == {"groups": 5}
    assert marks(tmp_path).entries == {"totals": UNTIL, "groups": UNTIL}


def test_a_reply_lost_to_a_timeout_does_not_store_the_payload_twice(
    tmp_path: Path, start_ingress: StartIngress
) -> None:
    slow = start_ingress("--delay", "3")  # stores, then holds its answer 3 s
    reports(tmp_path / "reports")
    g = gatherer(tmp_path, slow.url, timeout=1.0, retry=Retry(attempts=1))
    done = gather(g, tmp_path)
    assert done.replies[0].outcome == "failed" and "no reply within" in done.replies[0].errors[0]
    assert len(done.waiting) == 1
    deadline = time.monotonic() + 10
    while not stored(slow) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(stored(slow)) == 1  # the server has it; only its answer was lost
    # the retry is answered "duplicate", and the payload is not stored again
    again = gather(gatherer(tmp_path, slow.url, timeout=5.0), tmp_path,
                   UNTIL + dt.timedelta(hours=1))  # fmt: skip
    assert [r.outcome for r in again.replies] == ["duplicate"]
    assert len(stored(slow)) == 1
    assert marks(tmp_path).entries["groups"] == UNTIL


def test_a_refused_tarball_is_kept_apart_and_its_keys_held_back(
    tmp_path: Path, start_ingress: StartIngress
) -> None:
    server = start_ingress("--content-type", "application/x-something-else")
    reports(tmp_path / "reports")
    done = gather(gatherer(tmp_path, server.url), tmp_path)
    (reply,) = done.replies
    assert (reply.outcome, reply.status, reply.attempts) == ("refused", 415, 1)
    assert len(done.refused) == 1 and done.refused[0].exists() and done.waiting == []
    assert marks(tmp_path).entries == {}
    assert marks(tmp_path).failed == {"totals": UNTIL - dt.timedelta(weeks=4),
                                      "groups": UNTIL - dt.timedelta(weeks=4)}  # fmt: skip


def test_a_failed_collector_is_reported_and_gathered_again(
    tmp_path: Path, ingress_server: Server
) -> None:
    reports(tmp_path / "reports")
    done = gather(gatherer(tmp_path, ingress_server.url, reg=registry(failing=True)), tmp_path)
    (c,) = done.failed
    assert c.key == "broken" and "cannot be read" in str(c.error)
    (entry,) = stored(ingress_server)
    status = members(ingress_server, entry)["./data_collection_status.csv"].decode()
    assert "broken.json,failed" in status  # reported, not silently left out
    m = marks(tmp_path)
    assert "broken" not in m.entries and m.entries["groups"] == UNTIL
    assert m.failed == {"broken": UNTIL - dt.timedelta(weeks=4)}
    # its next window starts where the failed one did (as far back as the horizon lets),
    # not at the last gathering
    assert m.last_gather == UNTIL
    later = UNTIL + dt.timedelta(hours=1)
    assert m.since("broken", later) == later - dt.timedelta(weeks=4)
    assert m.since("groups", later) == UNTIL


def test_a_large_csv_is_split_across_tarballs_each_within_the_bound(
    tmp_path: Path, ingress_server: Server
) -> None:
    reports(tmp_path / "reports", rows=3000)
    bound = 12_000
    done = gather(gatherer(tmp_path, ingress_server.url, max_data_size=bound), tmp_path)
    assert len(done.built) >= 4 and all(r.outcome == "sent" for r in done.replies)
    rows: list[str] = []
    for entry in stored(ingress_server):
        got = members(ingress_server, entry)
        # the bound is on the data and config.json, as Red Hat's collector counts it (the
        # status file and the manifest, a few hundred bytes, come on top)
        meta = ("./manifest.json", "./data_collection_status.csv")
        assert sum(len(v) for k, v in got.items() if k not in meta) <= bound
        if "./groups.csv" in got:
            lines = got["./groups.csv"].decode().splitlines()
            assert lines[0] == HEADER  # each part repeats the header
            rows += lines[1:]
    original = (tmp_path / "reports" / "groups.csv").read_text().splitlines()[1:]
    assert sorted(rows) == sorted(original) and len(rows) == 3000


def test_a_dry_run_keeps_its_tarballs_and_sends_nothing(
    tmp_path: Path, ingress_server: Server
) -> None:
    reports(tmp_path / "reports")
    done = gather(gatherer(tmp_path, ingress_server.url), tmp_path, dry_run=True)
    assert len(done.built) == 1 and done.built[0].parent == tmp_path / "outbox" / "dry-run"
    assert done.built[0].exists() and done.replies == []
    assert stored(ingress_server) == [] and marks(tmp_path).entries == {}


def test_only_one_gathering_runs_at_a_time(tmp_path: Path, ingress_server: Server) -> None:
    reports(tmp_path / "reports")
    g = gatherer(tmp_path, ingress_server.url)
    with g.outbox.lock(), pytest.raises(Busy):
        gather(gatherer(tmp_path, ingress_server.url), tmp_path)


CRASH = """
import asyncio, datetime as dt, os, sys
from pathlib import Path
from stages.ingress.shipper import Shipper
from stages.ingress.gather import Gatherer
from tests.stages.ingress.test_gather import UNTIL, registry
tmp = Path(sys.argv[1])
g = Gatherer(registry(), tmp / "outbox", Shipper(sys.argv[2]))
def crash(path):
    os._exit(9)  # killed between packaging and upload
asyncio.run(g.run(until=UNTIL, report_dir=tmp / "reports", on_built=crash))
"""


def test_a_crash_between_packaging_and_upload_loses_nothing(
    tmp_path: Path, ingress_server: Server
) -> None:
    reports(tmp_path / "reports")
    proc = subprocess.run([sys.executable, "-c", CRASH, str(tmp_path), ingress_server.url],
                          cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert proc.returncode == 9, proc.stderr
    assert stored(ingress_server) == []
    assert len(list((tmp_path / "outbox" / "pending").glob("*.tar.gz"))) == 1
    again = gather(gatherer(tmp_path, ingress_server.url), tmp_path,
                   UNTIL + dt.timedelta(hours=1))  # fmt: skip
    assert [r.outcome for r in again.replies] == ["sent"] and again.built == []
    (entry,) = stored(ingress_server)
    assert json.loads(members(ingress_server, entry)["./totals.json"]) == {"groups": 5}
    assert marks(tmp_path).entries == {"totals": UNTIL, "groups": UNTIL}


def test_a_full_sync_is_done_when_due_and_again_after_a_failure(
    tmp_path: Path, ingress_server: Server
) -> None:
    calls: list[str] = []
    fail = {"now": False}
    r = Registry()

    @r.register("config", "1.0", config=True)
    def config(**kw: Any) -> dict[str, Any]:
        return {"site": "test"}

    def daily(key: str, last: dt.datetime, **kw: Any) -> list[tuple[dt.datetime, dt.datetime]]:
        calls.append("full" if kw.get("full_sync_enabled") else "since last")
        end = kw.get("until") or last + DAY
        return [(end - DAY, end)]

    @r.register("events", "1.0", slicing=daily, full_sync_interval_days=7)
    def events(**kw: Any) -> dict[str, Any]:
        if fail["now"]:
            raise OSError("the events cannot be read")
        return {"from": kw["since"].isoformat()}

    def once(at: dt.datetime) -> Watermarks:
        gather(gatherer(tmp_path, ingress_server.url, reg=r), tmp_path, at)
        return marks(tmp_path)

    assert "events_full" in once(UNTIL).entries and calls == ["full"]
    assert once(UNTIL + DAY).entries["events_full"] <= UNTIL + DAY and calls[-1] == "since last"
    fail["now"] = True
    assert "events_full" not in once(UNTIL + 2 * DAY).entries  # a failure drops it (flaw a)
    fail["now"] = False
    once(UNTIL + 3 * DAY)
    assert calls[-1] == "full"  # so the next gathering is a full one again
