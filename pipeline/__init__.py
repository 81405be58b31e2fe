"""A multistage stream-processing pipeline over ZeroMQ.

Describe a graph of stages in ``topology.yaml`` (or with ``AnalysisFrame.add_stage``), run it
with ``pipeline run``. Stages are plain Python (see ``pipeline.contract``); the engine runs
each as replicated processes or coroutines and moves batches between them.
"""

from __future__ import annotations

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
