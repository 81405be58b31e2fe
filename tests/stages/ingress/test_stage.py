"""The default topology ends by shipping its reports: to the real ingress server when it
is there, and promptly into the outbox when it is not."""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, Ran, cli
from tests.stages.ingress.conftest import StartIngress, request
from tests.stages.ingress.test_gather import free_port, members, stored
from tests.stages.wrstat.conftest import generate

pytestmark = pytest.mark.integration


def run(tmp_path: Path, url: str) -> Ran:
    return cli("run", str(REPO / "topology.yaml"), "--progress", "off",
               f"-eWRSTAT_DIR={tmp_path / 'in'}", f"-eREPORT_DIR={tmp_path / 'reports'}",
               f"-eINGRESS_URL={url}", cwd=tmp_path, timeout=120)  # fmt: skip


def test_a_run_ships_its_reports_to_the_ingress(
    tmp_path: Path, start_ingress: StartIngress
) -> None:
    generate(tmp_path / "in", 800, "scratch117=v3,scratch123=v6.2", date="20261101")
    server = start_ingress()
    ran = run(tmp_path, server.url)
    assert ran.returncode == 0, ran.stderr
    (entry,) = stored(server)
    got = members(server, entry)
    names = {n.removeprefix("./") for n in got}
    # (no line was rejected: the rejects collector had nothing, and sent no file)
    assert names == {"usage_groups.csv", "usage_users.csv", "usage_directories.csv",
                     "usage_ages.csv", "config.json", "data_collection_status.csv",
                     "manifest.json"}  # fmt: skip
    # the group report arrives whole: every row of the TSV, led by its date
    tsv = (tmp_path / "reports" / "group-20261101.tsv").read_text().splitlines()
    rows = list(csv.reader(io.StringIO(got["./usage_groups.csv"].decode())))
    assert rows[0] == ["Date", *tsv[0].split("\t")]
    assert [r[1:] for r in rows[1:]] == [line.split("\t") for line in tsv[1:]]
    assert {r[0] for r in rows[1:]} == {"20261101"}
    assert list((tmp_path / "reports" / "outbox" / "pending").iterdir()) == []


def test_an_unreachable_ingress_does_not_hold_the_run_back(
    tmp_path: Path, start_ingress: StartIngress
) -> None:
    generate(tmp_path / "in", 500, "scratch117=v3", date="20261101")
    url = f"http://127.0.0.1:{free_port()}/api/ingress/v1/upload"  # nobody listens
    t0 = time.monotonic()
    ran = run(tmp_path, url)
    seconds = time.monotonic() - t0
    assert ran.returncode == 0, ran.stderr
    assert seconds < 30, f"the run took {seconds:.1f} s with the ingress away"
    assert "1 tarball(s) not delivered" in ran.stderr and "outbox" in ran.stderr
    pending = tmp_path / "reports" / "outbox" / "pending"
    assert len(list(pending.glob("*.tar.gz"))) == 1
    # once it is back, pipeline ship sends what waited, once
    server = start_ingress()
    shipped = cli("ship", str(tmp_path / "reports"), "--url", server.url, cwd=tmp_path)
    assert shipped.returncode == 0, shipped.stderr
    assert "1 delivered" in shipped.stdout or "2 delivered" in shipped.stdout
    assert list(pending.glob("*.tar.gz")) == []
    health = request(server.base + "/health").json()
    assert health["stored"] >= 1 and health["duplicates"] == 0
