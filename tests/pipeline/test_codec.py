from __future__ import annotations

import numpy as np
import pytest

from pipeline.codec import Codec, item_records
from pipeline.columns import Columns
from pipeline.errors import WireError


def roundtrip(items: list[object]) -> list[object]:
    codec = Codec()
    body, *buffers = codec.encode(items)
    return codec.decode(body, [bytes(b) for b in buffers])


def test_plain_records_roundtrip() -> None:
    items = [{"a": 1, "b": "x", "c": b"\x00\xff", "d": [1.5, None, True]}, "s", 3, None]
    assert roundtrip(items) == items


def test_tuples_arrive_as_lists() -> None:
    assert roundtrip([(1, 2)]) == [[1, 2]]


def test_numpy_arrays_travel_as_raw_frames() -> None:
    arr = np.arange(12, dtype=np.int32).reshape(3, 4)
    codec = Codec()
    frames = codec.encode([{"x": arr}, arr[:, 1]])
    assert len(frames) == 3  # body + two buffers, no per-element encoding
    assert frames[1].nbytes == arr.nbytes
    out = codec.decode(frames[0], [bytes(f) for f in frames[1:]])
    assert np.array_equal(out[0]["x"], arr) and out[0]["x"].dtype == np.int32
    assert np.array_equal(out[1], arr[:, 1])


def test_received_arrays_are_read_only_views() -> None:
    out = roundtrip([np.ones(4)])
    assert not out[0].flags.writeable  # type: ignore[attr-defined]


def test_columns_roundtrip_with_object_column() -> None:
    c = Columns(
        i=np.arange(3), name=np.array(["a", "bb", None], dtype=object), f=np.ones(3, np.float32)
    )
    (out,) = roundtrip([c])
    assert isinstance(out, Columns) and out == c
    assert item_records(out) == 3


def test_object_arrays_and_scalars() -> None:
    obj = np.array([b"x", "y", 3], dtype=object)
    out = roundtrip([obj, np.int64(7), np.float32(1.5)])
    assert list(out[0]) == [b"x", "y", 3]  # type: ignore[call-overload]
    assert out[1:] == [7, 1.5]


def test_an_unsendable_item_names_its_type_and_what_to_do() -> None:
    class Thing:
        pass

    with pytest.raises(WireError, match=r"cannot send a .*Thing.*convert it in the stage"):
        Codec().encode([{"x": Thing()}])


def test_empty_batch_and_empty_array() -> None:
    assert roundtrip([]) == []
    (out,) = roundtrip([np.zeros(0, dtype=np.uint8)])
    assert out.shape == (0,)  # type: ignore[attr-defined]


def test_record_dtypes_keep_their_fields() -> None:
    dt = np.dtype([("a", "<i4"), ("b", "<f8", (2,)), ("c", [("x", "u1"), ("y", "S3")])])
    arr = np.zeros(3, dtype=dt)
    arr["a"] = [1, 2, 3]
    arr["b"][1] = [0.5, 1.5]
    arr["c"]["y"] = [b"ab", b"cd", b"ef"]
    (out,) = roundtrip([arr])
    assert out.dtype == dt  # type: ignore[attr-defined]
    assert out.tobytes() == arr.tobytes()  # type: ignore[attr-defined]
    (cols,) = roundtrip([Columns(r=arr)])
    assert cols["r"].dtype == dt  # type: ignore[index]


def test_datetime_dtypes() -> None:
    arr = np.array(["2026-11-22T10:00", "2026-11-21T00:00"], dtype="datetime64[s]")
    (out,) = roundtrip([arr])
    assert out.dtype == arr.dtype and (out == arr).all()  # type: ignore[attr-defined]
