from __future__ import annotations

import os
import subprocess
import sys
import zlib

import numpy as np
import pytest

from pipeline.columns import Columns
from pipeline.routing import (
    KeyRouteError,
    default_owners,
    key_hash,
    partition_of,
    partitions_of,
    split_by_owner,
)


@pytest.mark.parametrize(
    "keys",
    [
        np.array([0, 1, -1, 2**40, -(2**62)], dtype=np.int64),
        np.array([0, 1, 2**63 + 5], dtype=np.uint64),
        np.array([3, 4], dtype=np.int16),
        np.array([True, False]),
        np.array([0.5, -2.0, 1e300]),
        np.array([b"abc", b"", b"\xff"], dtype=object),
        np.array(["x", "yz"]),
        np.array([b"abc", b"q"], dtype="S3"),
    ],
)
def test_vectorised_partitions_match_single_keys(keys: np.ndarray) -> None:  # type: ignore[type-arg]
    got = partitions_of(keys, 97).tolist()
    assert got == [partition_of(k, 97) for k in keys.tolist()]


def test_hash_is_stable_across_processes() -> None:
    keys = [1, -5, "word", b"word", 2.5, ("a", 1)]
    script = f"from pipeline.routing import key_hash; print([key_hash(k) for k in {keys!r}])"
    seen = {
        subprocess.run(
            [sys.executable, "-c", script],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "2", "random")
    }
    assert seen == {f"{[key_hash(k) for k in keys]}\n"}
    assert key_hash("word") == zlib.crc32(b"word") == key_hash(b"word")


def test_owner_table_spreads_partitions() -> None:
    owners = default_owners(8, 3)
    assert owners == [0, 1, 2, 0, 1, 2, 0, 1]


def test_split_records_and_columns_by_owner() -> None:
    owners = np.array(default_owners(16, 3))
    records = [{"k": i % 10, "i": i} for i in range(100)]
    cols = Columns(k=np.arange(100) % 10, i=np.arange(100))
    by_rec = split_by_owner(records, "k", owners)
    by_col = split_by_owner([cols], "k", owners)
    assert sum(len(v) for v in by_rec.values()) == 100
    assert sum(len(c) for v in by_col.values() for c in v) == 100
    for owner, items in by_rec.items():
        keys = {r["k"] for r in items}
        col_keys = {int(k) for c in by_col[owner] for k in c["k"]}
        assert keys == col_keys  # a key goes to the same replica in both forms
    all_keys = [set(r["k"] for r in v) for v in by_rec.values()]
    assert sum(len(s) for s in all_keys) == len(set().union(*all_keys))  # no key split


def test_a_record_without_the_key_says_which_fields_it_has() -> None:
    with pytest.raises(KeyRouteError, match=r"no field 'k' \(fields: a, b\)"):
        split_by_owner([{"a": 1, "b": 2}], "k", np.zeros(4, dtype=np.intp))
