"""``Columns``: a batch of rows held as equal-length numpy arrays.

A ``Columns`` travels as one item; its arrays go over the wire as raw buffers (no per-row
encoding) and arrive as read-only arrays that share the received message's memory. It counts
as ``len(columns)`` records in the stats.

>>> import numpy as np
>>> c = Columns(uid=np.array([1, 2, 1]), size=np.array([10, 20, 30]))
>>> len(c), c.names
(3, ('uid', 'size'))
>>> c.select(c["uid"] == 1)["size"].tolist()
[10, 30]
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt


class Columns:
    """Named 1-D numpy arrays of one common length."""

    __slots__ = ("_cols", "_rows")

    def __init__(self, columns: Mapping[str, Any] | None = None, /, **named: Any) -> None:
        cols: dict[str, np.ndarray[Any, Any]] = {}
        for source in (columns or {}), named:
            for name, values in source.items():
                arr = np.asarray(values)
                if arr.ndim != 1:
                    msg = f"column '{name}' must be 1-D, got shape {arr.shape}"
                    raise ValueError(msg)
                cols[str(name)] = arr
        lengths = {len(a) for a in cols.values()}
        if len(lengths) > 1:
            sizes = ", ".join(f"{n}={len(a)}" for n, a in cols.items())
            msg = f"columns must have one length, got {sizes}"
            raise ValueError(msg)
        self._cols = cols
        self._rows = lengths.pop() if lengths else 0

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._cols)

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self._cols.values())

    def __len__(self) -> int:
        return self._rows

    def __getitem__(self, name: str) -> np.ndarray[Any, Any]:
        try:
            return self._cols[name]
        except KeyError:
            msg = f"no column '{name}' (columns: {', '.join(self._cols) or 'none'})"
            raise KeyError(msg) from None

    def __contains__(self, name: object) -> bool:
        return name in self._cols

    def items(self) -> Iterator[tuple[str, np.ndarray[Any, Any]]]:
        return iter(self._cols.items())

    def to_dict(self) -> dict[str, np.ndarray[Any, Any]]:
        return dict(self._cols)

    def select(self, rows: npt.ArrayLike) -> Columns:
        """Rows picked by a boolean mask or an index array, as a new ``Columns``."""
        idx = np.asarray(rows)
        return Columns({n: a[idx] for n, a in self._cols.items()})

    def with_columns(self, **named: Any) -> Columns:
        """A copy with columns added or replaced."""
        return Columns({**self._cols, **named})

    @staticmethod
    def concat(parts: Sequence[Columns]) -> Columns:
        """Rows of several ``Columns`` with the same names, in order."""
        if not parts:
            return Columns()
        names = parts[0].names
        for p in parts[1:]:
            if p.names != names:
                msg = f"cannot concatenate columns {p.names} with {names}"
                raise ValueError(msg)
        return Columns({n: np.concatenate([p[n] for p in parts]) for n in names})

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Columns):
            return NotImplemented
        return self.names == other.names and all(
            np.array_equal(a, other[n]) for n, a in self._cols.items()
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        cols = ", ".join(f"{n}:{a.dtype}" for n, a in self._cols.items())
        return f"Columns({self._rows} rows; {cols})"
