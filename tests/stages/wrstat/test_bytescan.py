"""Scanning eight bytes at a time gives what a byte-by-byte scan gives, near array ends too."""

from __future__ import annotations

import random

import numpy as np
from numba import njit

from stages.wrstat import bytescan as B


@njit(cache=False)
def _unsigned(buf, p):  # type: ignore[no-untyped-def]
    return B.unsigned(buf, p)


def arr(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype=np.uint8)


def test_digits_are_read_eight_at_a_time() -> None:
    rng = random.Random(5)
    for _ in range(3000):
        n = rng.randint(0, 20)
        text = "".join(rng.choice("0123456789") for _ in range(n))
        stop = rng.choice(["\t", "\n", "x", "/", ":", " ", "\xff"])
        data = (text + stop).encode("latin-1") + b"7" * 16  # room for the word loads
        value, count, end = _unsigned(arr(data), 0)
        taken = min(n, 16)  # the caller reads any digits past sixteen
        assert (int(value), count, end) == (int(text[:taken] or 0), taken, taken), text


def test_find_and_field_ends_match_a_plain_scan() -> None:
    rng = random.Random(6)
    for _ in range(2000):
        data = bytes(rng.choice(b"ab/\t\n") for _ in range(rng.randint(0, 40)))
        a = arr(data)
        start = rng.randint(0, len(data))
        assert B.find(a, start, len(data), ord("/")) == next(
            (i for i in range(start, len(data)) if data[i] == ord("/")), len(data)
        )
        assert B.field_end(a, start) == next(
            (i for i in range(start, len(data)) if data[i] in b"\t\n"), len(data)
        )
        assert B.line_end(a, start) == next(
            (i for i in range(start, len(data)) if data[i] == ord("\n")), len(data)
        )


def test_common_prefix_matches_a_plain_compare() -> None:
    rng = random.Random(7)
    for _ in range(2000):
        x = bytes(rng.choice(b"xy") for _ in range(rng.randint(0, 30)))
        y = x[: rng.randint(0, len(x))] + bytes(rng.choice(b"xz") for _ in range(10))
        limit = min(len(x), len(y))
        expected = next((i for i in range(limit) if x[i] != y[i]), limit)
        assert B.common_prefix(arr(x), 0, arr(y), 0, limit) == expected
