"""``pipeline ship`` as an operator runs it: a dry run, a refusal, bad options."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import cli
from tests.stages.ingress.conftest import Server
from tests.stages.ingress.test_gather import stored

pytestmark = pytest.mark.integration


def reports(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "group-20261130.tsv").write_text("Volume\tGroup\tUsage (bytes)\nv1\tg1\t10\n")
    return folder


def test_a_dry_run_keeps_the_tarball_and_sends_nothing(
    tmp_path: Path, ingress_server: Server
) -> None:
    folder = reports(tmp_path / "reports")
    ran = cli("ship", str(folder), "--url", ingress_server.url, "--dry-run", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert "dry run: 1 tarball(s) built and kept, nothing sent" in ran.stdout
    assert len(list((folder / "outbox" / "dry-run").glob("*.tar.gz"))) == 1
    assert stored(ingress_server) == []


def test_a_refused_tarball_is_exit_1_and_kept(tmp_path: Path, ingress_server: Server) -> None:
    folder = reports(tmp_path / "reports")
    ran = cli("ship", str(folder), "--url", ingress_server.url, "--content-type", "text/plain",
              cwd=tmp_path)  # fmt: skip
    assert ran.returncode == 1
    assert "refused (HTTP 415)" in ran.stdout
    assert len(list((folder / "outbox" / "refused").glob("*.tar.gz"))) == 1
    listed = cli("ship", str(folder), "--pending", cwd=tmp_path)
    assert listed.returncode == 0 and "waiting" not in listed.stdout


def test_a_header_that_is_not_name_value_is_a_usage_error(tmp_path: Path) -> None:
    ran = cli("ship", str(reports(tmp_path / "r")), "--header", "no-colon", cwd=tmp_path)
    assert ran.returncode == 2 and "NAME:VALUE" in ran.stderr
