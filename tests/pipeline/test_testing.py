"""The in-memory harness calls stage code as replicas do and re-raises its errors."""

from __future__ import annotations

import pytest

from pipeline.testing import run_stage
from tests import stagelib


def test_sources_transforms_and_stateful_stages() -> None:
    assert run_stage(stagelib.count_to, params={"n": 3}) == [{"i": 0}, {"i": 1}, {"i": 2}]
    assert run_stage(stagelib.explode, [{"i": 1}], params={"n": 2}) == [
        {"i": 1, "j": 0},
        {"i": 1, "j": 1},
    ]
    assert run_stage(stagelib.keep_even, [{"i": 1}, {"i": 2}]) == [{"i": 2}]
    out = run_stage(stagelib.Total, [{"k": 1, "i": 5}, {"k": 1, "i": 6}])
    assert out == [{"k": 1, "sum": 11, "n": 2, "replica": 0}]


def test_async_stages_and_limits() -> None:
    assert run_stage(stagelib.add_one, [{"i": 1}]) == [{"i": 2}]
    assert len(run_stage(stagelib.ticking, limit=5)) == 5


def test_mass_style_stages() -> None:
    assert run_stage(stagelib.mass_numbers, params={"count": 3}) == [{"i": 0}, {"i": 1}, {"i": 2}]
    assert run_stage(stagelib.mass_double, [{"i": 4}]) == [{"i": 8}]
    assert run_stage(stagelib.mass_async_plus, [{"i": 4}]) == [{"i": 5}]


def test_stage_errors_reach_the_test_unchanged() -> None:
    with pytest.raises(ValueError, match="item 13 is bad"):
        run_stage(stagelib.fail_on, [{"i": 13}])
