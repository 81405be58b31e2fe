"""The end of a run: the summary lines, ``summary.json`` and the exit code."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pipeline.errors import ExitCode
from pipeline.stats import StageTotals, rate


@dataclass
class RunReport:
    """What happened in a run. ``exit_code`` is what ``pipeline run`` exits with."""

    frame: str
    run_id: str
    run_dir: Path
    exit_code: ExitCode
    seconds: float
    stages: dict[str, StageTotals]
    #: why the run failed (crashes, lost records, accounting); empty on success
    errors: list[str] = field(default_factory=list)
    #: inputs that could not be read completely: (input, reason)
    incomplete: list[list[str]] = field(default_factory=list)
    dead_letters: list[Path] = field(default_factory=list)
    stopped_by: str | None = None
    #: remarks that are not failures (e.g. counts that could not be verified)
    notes: list[str] = field(default_factory=list)
    #: what stages said went wrong without failing the run (``Context.warn``), as
    #: ``STAGE: message``
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.exit_code == ExitCode.OK

    def to_json(self) -> dict[str, Any]:
        return {
            "frame": self.frame,
            "run_id": self.run_id,
            "exit_code": int(self.exit_code),
            "seconds": round(self.seconds, 3),
            "stopped_by": self.stopped_by,
            "errors": self.errors,
            "notes": self.notes,
            "warnings": self.warnings,
            "incomplete": self.incomplete,
            "dead_letters": [str(p) for p in self.dead_letters],
            "stages": {name: asdict(t) for name, t in self.stages.items()},
        }

    def write(self) -> Path:
        path = self.run_dir / "summary.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=2) + "\n")
        tmp.replace(path)
        return path

    def lines(self) -> list[str]:
        """One line per stage, then the verdict."""
        out = []
        width = max((len(n) for n in self.stages), default=5)
        for name, t in self.stages.items():
            wall = max(self.seconds, 1e-9) * max(t.replicas, 1)
            busy = 100.0 * t.busy / wall
            extra = ""
            if t.restarts:
                extra += f"  restarts {t.restarts}"
            if t.killed:
                extra += f"  killed {t.killed}"
            if len(t.scaled) > 1:
                extra += f"  replicas {'->'.join(map(str, t.scaled))}"
            out.append(
                f"  {name:<{width}}  in {t.records_in:>11,}  out {t.records_out:>11,}  "
                f"failed {t.records_dead:,}  in flight {t.inflight}  busy {busy:3.0f}%  "
                f"cpu {t.cpu:.1f}s  {rate(t.records_in or t.records_out, self.seconds)}{extra}"
            )
        for path in self.dead_letters:
            out.append(f"dead letters: {path}")
        for what, reason in self.incomplete:
            out.append(f"incomplete input: {what}: {reason}")
        for note in self.notes:
            out.append(f"note: {note}")
        for warning in self.warnings:
            out.append(f"warning: {warning}")
        for err in self.errors:
            out.append(f"error: {err}")
        verdict = {
            ExitCode.OK: "ok",
            ExitCode.FAILED: "FAILED",
            ExitCode.INCOMPLETE_INPUT: "finished, but some input could not be read",
        }.get(self.exit_code, str(self.exit_code))
        stopped = f" (stopped by {self.stopped_by})" if self.stopped_by else ""
        out.append(
            f"{self.frame}: {verdict}{stopped} in {self.seconds:.2f}s "
            f"(exit {int(self.exit_code)}); summary in {self.run_dir / 'summary.json'}"
        )
        return out
