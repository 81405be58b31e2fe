from __future__ import annotations

from rich.console import Console

from pipeline.progress import amount, clock, render
from pipeline.stats import StageTotals


def text(stages: dict[str, StageTotals], elapsed: float) -> str:
    console = Console(record=True, width=160, color_system=None)
    console.print(render(stages, elapsed, "demo: running"))
    return console.export_text()


def test_a_stage_that_knows_its_input_gets_a_bar_and_the_time_left() -> None:
    read = StageTotals("read", replicas=1, records_out=40, progress_done=25e6,
                       progress_total=100e6, progress_unit="bytes")  # fmt: skip
    count = StageTotals("count", replicas=3, records_in=12_000)
    out = text({"read": read, "count": count}, elapsed=10.0)
    lines = out.splitlines()
    assert lines[0].strip().startswith("demo: running")
    row = next(line for line in lines if line.strip().startswith("read"))
    # a quarter done in 10 s: 30 s left
    assert "25%" in row and "25.0 MB of 100.0 MB" in row and "0:00:30 left" in row
    row = next(line for line in lines if line.strip().startswith("count"))
    assert "12,000" in row and "1,200/s" in row and "%" not in row


def test_nothing_done_yet_has_no_time_left() -> None:
    read = StageTotals("read", replicas=1, progress_total=5.0, progress_unit="files")
    row = next(
        x for x in text({"read": read}, elapsed=1.0).splitlines() if x.strip().startswith("read")
    )
    assert "0%" in row and "0 files of 5 files" in row and "left" not in row


def test_amounts_and_clock() -> None:
    assert amount(1_500_000, "bytes") == "1.5 MB"
    assert amount(1234, "lines") == "1,234 lines"
    assert amount(7, "") == "7"
    assert clock(3725.9) == "1:02:05"
    assert clock(-3) == "0:00:00"
