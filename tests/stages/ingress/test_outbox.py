"""The outbox: described tarballs wait until delivered; refusals are kept apart; one
gathering at a time."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from stages.ingress.outbox import Busy, Outbox


def built(outbox: Outbox, name: str, data: bytes = b"tarball") -> Path:
    path = outbox.work / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_a_tarball_waits_described_until_delivered(tmp_path: Path) -> None:
    box = Outbox(tmp_path)
    w = box.put(built(box, "a-0.tar.gz"), {"sha256": "aa", "collections": []})
    assert w.path == tmp_path / "pending" / "a-0.tar.gz" and w.path.read_bytes() == b"tarball"
    assert [x.path.name for x in Outbox(tmp_path).pending()] == ["a-0.tar.gz"]  # after a restart
    box.delivered(w, 201)
    assert box.pending() == []
    assert list((tmp_path / "pending").iterdir()) == []
    (line,) = box.sent()
    assert (line["name"], line["sha256"], line["status"]) == ("a-0.tar.gz", "aa", 201)


def test_tarballs_wait_in_the_order_they_were_queued(tmp_path: Path) -> None:
    box = Outbox(tmp_path)
    for name in ("b-0.tar.gz", "a-0.tar.gz", "c-0.tar.gz"):
        box.put(built(box, name), {"sha256": name})
    assert [w.path.name for w in box.pending()] == ["b-0.tar.gz", "a-0.tar.gz", "c-0.tar.gz"]


def test_a_description_left_without_its_tarball_is_dropped(tmp_path: Path) -> None:
    box = Outbox(tmp_path)
    (tmp_path / "pending").mkdir()
    (tmp_path / "pending" / "lost-0.tar.gz.json").write_text(json.dumps({"sha256": "x"}))
    assert box.pending() == []
    assert not (tmp_path / "pending" / "lost-0.tar.gz.json").exists()


def test_a_refused_tarball_is_kept_apart_with_the_answer(tmp_path: Path) -> None:
    box = Outbox(tmp_path)
    w = box.put(built(box, "a-0.tar.gz"), {"sha256": "aa"})
    kept = box.refused(w, 400, '{"reason": "manifest lists x.csv, which is missing"}')
    assert kept == tmp_path / "refused" / "a-0.tar.gz" and kept.read_bytes() == b"tarball"
    meta = json.loads((tmp_path / "refused" / "a-0.tar.gz.json").read_text())
    assert meta["refused"]["status"] == 400 and "missing" in meta["refused"]["body"]
    assert box.pending() == []


def test_only_one_gathering_holds_the_outbox(tmp_path: Path) -> None:
    box = Outbox(tmp_path)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\n"
         "from stages.ingress.outbox import Outbox\n"
         "with Outbox(sys.argv[1]).lock():\n print('held', flush=True); time.sleep(30)",
         str(tmp_path)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(Busy, match="another gathering"), box.lock():
            pass
    finally:
        holder.kill()
        holder.wait()
        if holder.stdout:
            holder.stdout.close()
    with box.lock():  # free again once the other one is gone
        pass
