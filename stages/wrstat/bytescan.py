"""Byte scanning eight bytes at a time, for the compiled parsers.

A byte loop with an early exit does not vectorize: it costs about a cycle and a half per
byte. These helpers load eight bytes as one little-endian word (an unaligned load) and find
a byte in it with the "has a zero byte" trick, then the first match by counting trailing
zero bits. The last bytes of an array are scanned one by one, so nothing is read past its
end.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.cpython.unsafe.numbers import trailing_zeros
from numba.extending import intrinsic

ONES = np.uint64(0x0101010101010101)
HIGH = np.uint64(0x8080808080808080)
TABS = np.uint64(0x0909090909090909)
NEWLINES = np.uint64(0x0A0A0A0A0A0A0A0A)


def repeat(byte: int) -> np.uint64:
    """``byte`` in every byte of a word."""
    return np.uint64(byte * 0x0101010101010101)


@intrinsic
def load8(typingctx, arr, idx):  # type: ignore[no-untyped-def]
    """The eight bytes ``arr[idx:idx + 8]`` of a uint8 array as one little-endian uint64;
    the caller makes sure they are all inside the array."""
    sig = types.uint64(arr, types.intp)

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        ptr = cgutils.pointer_add(builder, ary.data, args[1])
        word = builder.bitcast(ptr, ir.IntType(64).as_pointer())
        return builder.load(word, align=1)

    return sig, codegen


@njit(cache=True, nogil=True, inline="always")
def zero_bytes(x):  # type: ignore[no-untyped-def]
    """A word whose lowest set bit is in the first zero byte of ``x`` (0 if none)."""
    return (x - ONES) & ~x & HIGH


@njit(cache=True, nogil=True, inline="always")
def first(mask):  # type: ignore[no-untyped-def]
    """The byte index of the lowest set bit of a non-zero ``mask``."""
    return np.int64(trailing_zeros(mask)) >> 3


@njit(cache=True, nogil=True, inline="always")
def find(buf, p, end, byte):  # type: ignore[no-untyped-def]
    """The first ``p <= i < end`` with ``buf[i] == byte``, or ``end``."""
    pattern = ONES * np.uint64(byte)
    while p + 8 <= end:
        m = zero_bytes(load8(buf, p) ^ pattern)
        if m:
            return p + first(m)
        p += 8
    while p < end and buf[p] != byte:
        p += 1
    return p


@njit(cache=True, nogil=True, inline="always")
def find2(buf, p, end, a, b):  # type: ignore[no-untyped-def]
    """The first ``p <= i < end`` with ``buf[i]`` equal to ``a`` or ``b``, or ``end``."""
    pa = ONES * np.uint64(a)
    pb = ONES * np.uint64(b)
    while p + 8 <= end:
        w = load8(buf, p)
        m = zero_bytes(w ^ pa) | zero_bytes(w ^ pb)
        if m:
            return p + first(m)
        p += 8
    while p < end and buf[p] != a and buf[p] != b:
        p += 1
    return p


@njit(cache=True, nogil=True, inline="always")
def field_end(buf, p):  # type: ignore[no-untyped-def]
    """The first tab or line end at or after ``p`` (or ``len(buf)``)."""
    return find2(buf, p, len(buf), 9, 10)


@njit(cache=True, nogil=True, inline="always")
def line_end(buf, p):  # type: ignore[no-untyped-def]
    """The first line end at or after ``p`` (or ``len(buf)``)."""
    return find(buf, p, len(buf), 10)


@njit(cache=True, nogil=True, inline="always")
def common_prefix(a_arr, a, b_arr, b, limit):  # type: ignore[no-untyped-def]
    """How many bytes ``a_arr[a:]`` and ``b_arr[b:]`` share, up to ``limit``; both ranges
    must lie inside their arrays for ``limit`` bytes."""
    k = 0
    while k + 8 <= limit:
        x = load8(a_arr, a + k) ^ load8(b_arr, b + k)
        if x:
            return k + first(x)
        k += 8
    while k < limit and a_arr[a + k] == b_arr[b + k]:
        k += 1
    return k


_LOW_NIBBLES = np.uint64(0x0F0F0F0F0F0F0F0F)
_HIGH_NIBBLES = np.uint64(0xF0F0F0F0F0F0F0F0)
_SIXES = np.uint64(0x0606060606060606)
_THREES = np.uint64(0x3333333333333333)
_BYTE_PAIRS = np.uint64(0x00FF00FF00FF00FF)
_QUADS = np.uint64(0x0000FFFF0000FFFF)
POW10 = np.array([10**k for k in range(9)], dtype=np.uint64)


@njit(cache=True, nogil=True, inline="always")
def digits(w):  # type: ignore[no-untyped-def]
    """How many of the bytes of ``w``, from the lowest, are ASCII digits (0 to 8)."""
    t = (w & _HIGH_NIBBLES) | (((w + _SIXES) & _HIGH_NIBBLES) >> np.uint64(4))
    other = t ^ _THREES  # non-zero in each byte that is not a digit
    return first(other) if other else 8


@njit(cache=True, nogil=True, inline="always")
def eight_digits(w):  # type: ignore[no-untyped-def]
    """The number written by the eight ASCII digits of ``w`` (the first in the lowest
    byte); bytes that are zero count as leading zeros."""
    w = ((w & _LOW_NIBBLES) * np.uint64(2561)) >> np.uint64(8)
    w = ((w & _BYTE_PAIRS) * np.uint64(6553601)) >> np.uint64(16)
    return ((w & _QUADS) * np.uint64(42949672960001)) >> np.uint64(32)


@njit(cache=True, nogil=True, inline="always")
def leading_digits(w, n):  # type: ignore[no-untyped-def]
    """The number written by the first ``n`` (1 to 8) bytes of ``w``, all digits."""
    return eight_digits(w << np.uint64(64 - 8 * n)) if n < 8 else eight_digits(w)


@njit(cache=True, nogil=True)
def unsigned(buf, p):  # type: ignore[no-untyped-def]
    """The decimal digits at ``buf[p:]`` read as a number, eight at a time: (value, digit
    count, position after them). At most 16 digits are read this way; the caller reads
    on when there are more. Needs 16 bytes of ``buf`` from ``p``."""
    w = load8(buf, p)
    n = digits(w)
    if n < 8:
        return (leading_digits(w, n) if n else np.uint64(0)), n, p + n
    v = eight_digits(w)
    w = load8(buf, p + 8)
    m = digits(w)
    if m == 0:
        return v, 8, p + 8
    return v * POW10[m] + leading_digits(w, m), 8 + m, p + 8 + m


@intrinsic
def borrow(typingctx, arr):  # type: ignore[no-untyped-def]
    """A view of ``arr`` that is not reference counted, for a kernel's inner loops: each
    helper that takes a counted array costs two atomic operations per call. The caller
    keeps ``arr`` alive for as long as the view is used."""
    sig = arr(arr)

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        aty = signature.args[0]
        src = context.make_array(aty)(context, builder, args[0])
        view = context.make_array(aty)(context, builder)
        context.populate_array(view, data=src.data, shape=src.shape, strides=src.strides,
                               itemsize=src.itemsize, meminfo=None, parent=None)  # fmt: skip
        return view._getvalue()

    return sig, codegen
