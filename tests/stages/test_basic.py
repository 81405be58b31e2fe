from __future__ import annotations

import pytest

from pipeline.testing import run_stage
from stages.basic import CountBy, parse_json, project, select, split

ROWS = [
    {"level": "ERROR", "msg": "disk"},
    {"level": "INFO", "msg": "ok"},
    {"level": "WARN", "msg": "hot"},
]


def test_select_by_value_set_and_regex() -> None:
    assert run_stage(select, ROWS, params={"field": "level", "equals": "INFO"}) == [ROWS[1]]
    assert run_stage(select, ROWS, params={"field": "level", "one_of": ["ERROR", "WARN"]}) == [
        ROWS[0],
        ROWS[2],
    ]
    assert run_stage(select, ROWS, params={"field": "msg", "matches": "^h"}) == [ROWS[2]]


def test_project_keeps_named_fields() -> None:
    assert run_stage(project, ROWS[:1], params={"fields": ["msg", "nope"]}) == [{"msg": "disk"}]


def test_parse_json_names_the_input_line_on_error() -> None:
    assert run_stage(parse_json, [{"text": '{"a": 1}'}]) == [{"a": 1}]
    with pytest.raises(ValueError, match=r"^f\.log:7: field 'text' does not hold JSON"):
        run_stage(parse_json, [{"file": "f.log", "line": 7, "text": "{"}])


def test_split_words() -> None:
    assert run_stage(split, [{"text": "It's a Big, big day"}]) == [
        {"word": w} for w in ["it's", "a", "big", "big", "day"]
    ]


def test_count_by_emits_totals_at_the_end() -> None:
    items = [{"w": w} for w in ["a", "b", "a", "c", "a", "b"]]
    assert run_stage(CountBy, items, params={"field": "w"}, batch_size=4) == [
        {"w": "a", "count": 3},
        {"w": "b", "count": 2},
        {"w": "c", "count": 1},
    ]
