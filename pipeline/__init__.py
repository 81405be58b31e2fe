"""A multistage stream-processing pipeline over ZeroMQ.

Describe a graph of stages in ``topology.yaml`` (or with ``AnalysisFrame.add_stage``), run it
with ``pipeline run``. Stages are plain Python (see ``pipeline.contract``); the engine runs
each as replicated processes or coroutines and moves batches between them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pipeline.columns import Columns
    from pipeline.contract import Batch, Context
    from pipeline.errors import (
        EndOfStream,
        ExitCode,
        PipelineError,
        RunFailed,
        StageError,
        TopologyError,
        UsageError,
    )
    from pipeline.frame import AnalysisFrame
    from pipeline.report import RunReport
    from pipeline.topology import Topology, load_topology

#: where each name of the package's interface is defined; imported on first use, so that a
#: command that needs none of them (``pipeline --help``) does not pay for numpy and YAML
_HOMES = {
    "AnalysisFrame": "pipeline.frame",
    "Batch": "pipeline.contract",
    "Columns": "pipeline.columns",
    "Context": "pipeline.contract",
    "EndOfStream": "pipeline.errors",
    "ExitCode": "pipeline.errors",
    "PipelineError": "pipeline.errors",
    "RunFailed": "pipeline.errors",
    "RunReport": "pipeline.report",
    "StageError": "pipeline.errors",
    "Topology": "pipeline.topology",
    "TopologyError": "pipeline.errors",
    "UsageError": "pipeline.errors",
    "load_topology": "pipeline.topology",
}

__all__ = [
    "AnalysisFrame",
    "Batch",
    "Columns",
    "Context",
    "EndOfStream",
    "ExitCode",
    "PipelineError",
    "RunFailed",
    "RunReport",
    "StageError",
    "Topology",
    "TopologyError",
    "UsageError",
    "load_topology",
]


if not TYPE_CHECKING:  # type checkers see the imports above, and no other name

    def __getattr__(name: str) -> object:
        home = _HOMES.get(name)
        if home is None:
            msg = f"module 'pipeline' has no attribute {name!r}"
            raise AttributeError(msg)
        value = getattr(importlib.import_module(home), name)
        globals()[name] = value
        return value
