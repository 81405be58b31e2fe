"""The wire codec: msgpack for structure, raw frames for numpy buffers. Never pickle.

A batch of items becomes ``[body, *buffers]``: ``body`` is msgpack (msgspec's encoder, the
fastest msgpack codec for Python) in which every numpy array is an extension value that
points at one of the following frames. Arrays are sent without copying and received as
read-only views of the message (``np.frombuffer``), so a 1 MiB array costs one kernel copy
per hop and no Python-level work.

Extension types (stable; other languages can read them):

* 1 ndarray: ``[frame index, dtype.str, shape]``
* 2 Columns: ``[rows, [[name, frame index | None, dtype.str, values | None], ...]]``;
  object-dtype columns carry their values inline instead of a frame
* 3 object ndarray: ``[shape, values]``

An emitted array belongs to the pipeline: do not modify it afterwards (it may still be
queued for sending, or kept for redelivery).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec
import numpy as np

from pipeline.columns import Columns
from pipeline.errors import WireError

EXT_NDARRAY = 1
EXT_COLUMNS = 2
EXT_OBJECT_ARRAY = 3

Buffer = bytes | memoryview | np.ndarray[Any, Any]


def _cannot_send(obj: Any) -> str:
    return (
        f"cannot send a {type(obj).__module__}.{type(obj).__qualname__}: the wire carries "
        "None, bool, int, float, str, bytes, list, tuple (arrives as list), dict, "
        "numpy arrays and pipeline.Columns; convert it in the stage before emitting"
    )


def _scalar_hook(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    raise WireError(_cannot_send(obj))


_plain_encoder = msgspec.msgpack.Encoder()
_plain_decoder = msgspec.msgpack.Decoder()
# values of object-dtype arrays are carried inline, so they must be plain msgpack values
_values_encoder = msgspec.msgpack.Encoder(enc_hook=_scalar_hook)


def pack(obj: Any) -> bytes:
    """Encode a plain control or header message (no numpy)."""
    return _plain_encoder.encode(obj)


def unpack(data: Any) -> Any:
    """Decode a plain control or header message."""
    return _plain_decoder.decode(data)


def _frame_bytes(frame: Any) -> Any:
    """The buffer of a received frame (``zmq.Frame`` or bytes) without copying."""
    buf = getattr(frame, "buffer", None)
    return frame if buf is None else buf


class Codec:
    """Encodes and decodes batches of items; one per event loop (not thread-safe)."""

    def __init__(self) -> None:
        self._out: list[Buffer] = []
        self._in: Sequence[Any] = ()
        self._encoder = msgspec.msgpack.Encoder(enc_hook=self._enc_hook)
        self._decoder = msgspec.msgpack.Decoder(ext_hook=self._ext_hook)

    def encode(self, items: Sequence[Any]) -> list[Buffer]:
        """``[body, *buffers]`` for a list of items."""
        out: list[Buffer] = []
        self._out = out
        try:
            body = self._encoder.encode(items)
        finally:
            self._out = []
        return [body, *out]

    def decode(self, body: Any, buffers: Sequence[Any] = ()) -> list[Any]:
        """Items from ``body`` and its buffer frames (arrays share the frames' memory)."""
        self._in = buffers
        try:
            items: list[Any] = self._decoder.decode(_frame_bytes(body))
        finally:
            self._in = ()
        return items

    def _add_buffer(self, arr: np.ndarray[Any, Any]) -> int:
        # As raw bytes: some dtypes (datetime64, timedelta64) refuse the buffer protocol.
        self._out.append(np.ascontiguousarray(arr).reshape(-1).view(np.uint8))
        return len(self._out) - 1

    def _enc_hook(self, obj: Any) -> Any:
        if isinstance(obj, np.ndarray):
            if obj.dtype.hasobject:
                values = obj.ravel().tolist()
                return msgspec.msgpack.Ext(
                    EXT_OBJECT_ARRAY, _values_encoder.encode([list(obj.shape), values])
                )
            idx = self._add_buffer(obj)
            return msgspec.msgpack.Ext(
                EXT_NDARRAY, pack([idx, _dtype_out(obj.dtype), list(obj.shape)])
            )
        if isinstance(obj, Columns):
            spec: list[list[Any]] = []
            for name, arr in obj.items():
                if arr.dtype.hasobject:
                    spec.append([name, None, "O", arr.tolist()])
                else:
                    spec.append([name, self._add_buffer(arr), _dtype_out(arr.dtype), None])
            return msgspec.msgpack.Ext(EXT_COLUMNS, _values_encoder.encode([len(obj), spec]))
        if isinstance(obj, np.generic):
            return obj.item()
        if isinstance(obj, set | frozenset):
            return list(obj)
        raise WireError(_cannot_send(obj))

    def _ext_hook(self, code: int, data: memoryview) -> Any:
        if code == EXT_NDARRAY:
            idx, dtype, shape = unpack(data)
            return _view(self._in[idx], dtype).reshape(shape)
        if code == EXT_COLUMNS:
            rows, spec = unpack(data)
            cols: dict[str, np.ndarray[Any, Any]] = {}
            for name, idx, dtype, values in spec:
                if idx is None:
                    arr = np.empty(rows, dtype=object)
                    arr[:] = values
                    cols[name] = arr
                else:
                    cols[name] = _view(self._in[idx], dtype)
            return Columns(cols)
        if code == EXT_OBJECT_ARRAY:
            shape, values = unpack(data)
            arr = np.empty(len(values), dtype=object)
            arr[:] = values
            return arr.reshape(shape)
        msg = f"unknown msgpack extension type {code} in a received batch"
        raise WireError(msg)


def _dtype_out(dtype: np.dtype[Any]) -> Any:
    """A dtype as plain data: its string, or for records its field list (``descr``)."""
    return dtype.descr if dtype.fields else dtype.str


def _dtype_in(spec: Any) -> np.dtype[Any]:
    if isinstance(spec, str):
        return np.dtype(spec)

    def field(entry: list[Any]) -> tuple[Any, ...]:
        name, fmt, *shape = entry
        fmt = [field(e) for e in fmt] if isinstance(fmt, list) else fmt
        return (name, fmt, *(tuple(s) for s in shape))

    return np.dtype([field(e) for e in spec])


def _view(frame: Any, dtype: Any) -> np.ndarray[Any, Any]:
    arr = np.frombuffer(_frame_bytes(frame), dtype=_dtype_in(dtype))
    arr.flags.writeable = False
    return arr


def item_records(item: Any) -> int:
    """How many records an item counts as: rows for ``Columns``, else one."""
    return len(item) if isinstance(item, Columns) else 1


def item_nbytes(item: Any) -> int:
    """A cheap size estimate used to cut batches by bytes (buffers only)."""
    if isinstance(item, np.ndarray):
        return int(item.nbytes)
    if isinstance(item, Columns):
        return item.nbytes
    return 0
