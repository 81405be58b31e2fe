"""gzip and zlib from isal where it is installed (several times faster), else Python's own."""

from __future__ import annotations

import gzip
import importlib
import types
import zlib


def _preferred(name: str, fallback: types.ModuleType) -> types.ModuleType:
    try:
        return importlib.import_module(name)
    except ImportError:  # pragma: no cover - isal is a dependency
        return fallback


#: ``decompressobj`` and ``error`` as in ``zlib``
zlib_module = _preferred("isal.isal_zlib", zlib)
#: ``open`` as in ``gzip``
gzip_module = _preferred("isal.igzip", gzip)
