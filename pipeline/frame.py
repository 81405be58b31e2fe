"""``AnalysisFrame``: the Python API. It builds the same graph as a topology file.

The MASS multistaged-analysis API works nearly verbatim::

    from pipeline import AnalysisFrame, EndOfStream

    def numbers(sockets):
        if sockets.sent == 100:
            raise EndOfStream          # a MASS-style source ends its stream like this
        sockets.send({"n": sockets.sent})

    def square(sockets):
        data = sockets.receive()
        sockets.send({"n": data["n"] ** 2})

    def report(sockets):
        print(sockets.receive())

    if __name__ == "__main__":
        frame = AnalysisFrame()
        frame.add_stage(numbers, "numbers", next_stage="square")
        frame.add_stage(square, "square", next_stage="report", replicas=2)
        frame.add_stage(report, "report", concurrency="process")
        frame.start_all_stages()

Stages written to the engine's own contract (see ``pipeline.contract``) work here as well,
and ``AnalysisFrame.from_yaml("topology.yaml")`` loads a topology file.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pipeline.contract import ResolveError, reference
from pipeline.errors import ExitCode, Problem, RunFailed, TopologyError
from pipeline.report import RunReport
from pipeline.topology import Topology, build_topology, load_topology
from pipeline.yamlfile import Located, load


class AnalysisFrame:
    """A graph of stages, run by ``run()`` or (MASS style) ``start_all_stages()``."""

    def __init__(
        self,
        name: str = "frame",
        *,
        run_dir: str | os.PathLike[str] | None = None,
        transport: str = "ipc",
        host: str = "127.0.0.1",
        drain_timeout: float = 30.0,
        stats_interval: float = 0.5,
        ipc_path: str | os.PathLike[str] | None = None,
    ) -> None:
        data: dict[str, Any] = {
            "name": name,
            "transport": transport,
            "host": host,
            "drain_timeout": drain_timeout,
            "stats_interval": stats_interval,
            "stages": [],
        }
        where = run_dir if run_dir is not None else ipc_path  # MASS called it ipc_path
        if where is not None:
            data["run_dir"] = os.fspath(where)
        self._data = data
        self._located: Located | None = None
        self._origin: str | None = None
        self._default_name = name

    @classmethod
    def from_yaml(
        cls, path: str | os.PathLike[str], env: Mapping[str, str] | None = None
    ) -> AnalysisFrame:
        """A frame holding the topology of a YAML file (checked now)."""
        topo = load_topology(path, env)  # raises TopologyError with file and line
        frame = cls(topo.name)
        file = os.fspath(path)
        located = load(
            Path(file).read_text(encoding="utf-8"), file, os.environ if env is None else env
        )
        frame._data = dict(located.data)
        frame._data.setdefault("name", topo.name)
        frame._located = located
        frame._origin = file
        return frame

    def add_stage(
        self,
        method: Callable[..., Any] | str,
        name: str,
        replicas: int = 1,
        concurrency: str = "process",
        args: Sequence[Any] = (),
        next_stage: str | Sequence[str] | None = None,
        queue_size: int | None = None,
        *,
        params: Mapping[str, Any] | None = None,
        route: str | Mapping[str, Any] | None = None,
        on_error: str = "fail",
        max_restarts: int = 5,
        batch: Mapping[str, Any] | None = None,
        backpressure: Mapping[str, Any] | None = None,
    ) -> AnalysisFrame:
        """Add a stage. ``concurrency`` is ``'process'`` or ``'async'``; ``next_stage`` one
        stage or a list (each gets every output); ``queue_size`` is how many batches a replica
        accepts ahead (its credit). Returns the frame, so calls can be chained."""
        try:
            run = method if isinstance(method, str) else reference(method)
        except ResolveError as exc:
            raise TopologyError([Problem(str(exc), stage=name)]) from None
        stage: dict[str, Any] = {
            "name": name,
            "run": run,
            "kind": concurrency,
            "replicas": replicas,
            "on_error": on_error,
            "max_restarts": max_restarts,
        }
        if next_stage is not None:
            stage["next"] = [next_stage] if isinstance(next_stage, str) else list(next_stage)
        if args:
            stage["args"] = tuple(args)
        if params:
            stage["params"] = dict(params)
        if route is not None:
            stage["route"] = route
        if batch:
            stage["batch"] = dict(batch)
        flow = dict(backpressure or {})
        if queue_size is not None:
            flow.setdefault("credit", queue_size)
        if flow:
            stage["backpressure"] = flow
        self._data["stages"].append(stage)
        return self

    @property
    def topology(self) -> Topology:
        """The checked topology (raises ``TopologyError`` listing every problem)."""
        return build_topology(
            self._data,
            located=self._located,
            origin=self._origin,
            default_name=self._default_name,
        )

    def run(self, *, log_level: int = logging.INFO) -> RunReport:
        """Run until every stage has ended (or the run fails, or a signal stops it)."""
        from pipeline.supervisor import Supervisor  # noqa: PLC0415 - keeps imports light

        return Supervisor(self.topology, log_level=log_level).run()

    def start_all_stages(self) -> RunReport:
        """Run (blocking, as in MASS); raise ``RunFailed`` if the run failed (exit code 1).

        A run that finished but could not read all its input (exit code 3) returns its
        report; ``report.incomplete`` says what was missed."""
        report = self.run()
        if report.exit_code == ExitCode.FAILED:
            reasons = "; ".join(report.errors) or f"exit code {int(report.exit_code)}"
            raise RunFailed(f"frame '{report.frame}' failed: {reasons}", report)
        return report

    def __repr__(self) -> str:
        names = [s.get("name") for s in self._data.get("stages", [])]
        return f"AnalysisFrame({self._data.get('name')!r}, stages={names})"
