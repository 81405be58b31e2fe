from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO

ALL_ERAS = "scratch117=v3,scratch118=v5.1,scratch119=v5.2,scratch123=v6.2,scratch124=v6.4"


def generate(folder: Path, lines: int, volumes: str = ALL_ERAS, date: str = "20261101",
             history: int = 0, seed: int = 3, churn: float = 0.0) -> None:  # fmt: skip
    subprocess.run(
        [sys.executable, "-m", "pipeline", "gen", "wrstat", str(folder), "--lines", str(lines),
         "--volumes", volumes, "--date", date, "--history", str(history), "--seed", str(seed),
         *(["--churn", str(churn)] if churn else [])],
        check=True, capture_output=True, cwd=REPO,
    )  # fmt: skip


@pytest.fixture(scope="session")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Stats files of every era and naming, with older snapshots beside the newest."""
    folder = tmp_path_factory.mktemp("wrstat")
    generate(folder, 4000, history=1)
    return folder


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]
