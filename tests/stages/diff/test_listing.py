"""Change lists: paths read again by line number, rows written by compiled code."""

from __future__ import annotations

import io
import random
from pathlib import Path

import numpy as np
import pytest

from stages.diff.listing import MISSING, Paths, escape_path, read_paths, write_rows
from stages.wrstat.escape import go_escape
from tests.stages.diff.pairs import write


def test_paths_are_escaped_exactly_as_the_usage_reports_escape_them() -> None:
    rng = random.Random(5)
    awkward = [
        b"/a\tb",
        b"/new\nline",
        b"/back\\slash",
        b"/\xc3\xa9t\xc3\xa9",
        b"/\xff\xfe",
        b"/\xed\xa0\x80",
        b"/\xe2\x82",
        b"/\xf0\x9f\x98\x80",
        b"/\xc0\xaf",
        b"/\x7f\x01",
        b"/\xf4\x90\x80\x80",
        b"/\xe0\x80\xaf",
    ]
    samples = awkward + [
        bytes(rng.randrange(256) for _ in range(rng.randrange(1, 12))) for _ in range(3000)
    ]
    for raw in samples:
        assert escape_path(raw) == go_escape(raw), raw


def test_the_paths_of_chosen_lines_of_a_file(tmp_path: Path) -> None:
    rows = [(b"/v/f%d" % i, "f", i, 1, 1000 + i, 1, 100, 1) for i in range(1, 2001)]
    file = write(tmp_path / "20261101_v.a.b.stats.gz", list(rows))
    wanted = np.array([1, 2, 777, 1999, 2000])
    got = read_paths(file, wanted)
    assert [got.data[s:e].tobytes() for s, e in zip(got.start, got.end, strict=True)] == [
        b"/v/f1",
        b"/v/f2",
        b"/v/f777",
        b"/v/f1999",
        b"/v/f2000",
    ]


def test_a_line_that_is_not_there_is_an_error_not_a_short_list(tmp_path: Path) -> None:
    file = write(tmp_path / "20261101_v.a.b.stats.gz", [(b"/v", "d", 1, 1, 1, 1, 100, 1)])
    with pytest.raises(RuntimeError, match="line 5 is gone"):
        read_paths(file, np.array([1, 5]))


def test_rows_with_missing_values_and_negative_times() -> None:
    data = np.frombuffer(b"/a/b/c\\d", dtype=np.uint8)
    paths = Paths(data, np.array([0, 4]), np.array([4, 8]))
    numbers = np.array([[1, 2, MISSING, 10, MISSING, -5], [3, 4, 7, 8, 9, 10]], dtype=np.int64)
    f = io.BytesIO()
    write_rows(f, paths, Paths.none(2), np.array([ord("f"), ord("d")], np.uint8), numbers, block=1)
    assert f.getvalue().decode().splitlines() == [
        "/a/b\t-\tf\t1\t2\t-\t10\t-\t-5",
        "/c\\\\d\t-\td\t3\t4\t7\t8\t9\t10",
    ]
