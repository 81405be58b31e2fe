"""Roles follow from a callable's shape; stages never need zmq."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pipeline.contract import ResolveError, Role, inspect_stage, reference
from tests import stagelib
from tests.conftest import REPO


@pytest.mark.parametrize(
    ("obj", "role", "is_async"),
    [
        (stagelib.count_to, Role.SOURCE, False),
        (stagelib.double, Role.TRANSFORM, False),
        (stagelib.add_one, Role.TRANSFORM, True),
        (stagelib.Total, Role.STATEFUL, False),
        (stagelib.mass_double, Role.MASS, False),
        (stagelib.mass_async_plus, Role.MASS, True),
    ],
)
def test_roles(obj: object, role: Role, is_async: bool) -> None:
    impl = inspect_stage(obj)
    assert (impl.role, impl.is_async) == (role, is_async)


def test_a_class_without_process_or_generate_is_refused() -> None:
    class Nothing:
        pass

    with pytest.raises(ResolveError, match="has neither process"):
        inspect_stage(Nothing)


def test_nested_functions_cannot_be_referenced() -> None:
    def inner(item: object, ctx: object) -> object:
        return item

    with pytest.raises(ResolveError, match="module-level"):
        reference(inner)
    assert reference(stagelib.double) == "tests.stagelib:double"


def test_stages_and_the_stage_api_never_import_zmq() -> None:
    code = (
        "import sys, pipeline, pipeline.testing, stages.files, stages.basic, stages.jsonl, "
        "stages.text; print('zmq' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"
