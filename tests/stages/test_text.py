from __future__ import annotations

import random
from pathlib import Path

from stages.text import vocabulary, write_sample


def test_sample_text_is_reproducible(tmp_path: Path) -> None:
    a = write_sample(tmp_path / "a", files=2, lines=50, seed=3)
    b = write_sample(tmp_path / "b", files=2, lines=50, seed=3)
    assert [p.read_text() for p in a] == [p.read_text() for p in b]
    assert all(len(p.read_text().splitlines()) == 50 for p in a)


def test_vocabulary_words_are_distinct() -> None:
    words = vocabulary(300, random.Random(1))
    assert len(set(words)) == 300
