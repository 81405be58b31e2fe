"""The collectors shipped with the pipeline: what a run's reports send to the ingress.

Each is registered in ``stages.ingress.registry.REGISTRY`` when this module is imported,
and is called with the window ``since`` .. ``until``, the staging directory
``full_path`` and the ``report_dir`` the run wrote into. A report file belongs to the
window in which it was written (its mtime), so each run's reports are sent once, and a
report written again (a run done over) is sent again.

* ``config`` (JSON): what produced the data: the product and its version, the host, the
  report directory, the window;
* ``usage_groups``, ``usage_users``, ``usage_directories``, ``usage_ages`` (CSV): the
  wrstat reports (``group-``, ``user-``, ``directory-``, ``ages-<YYYYMMDD>.tsv``) of the
  window, as one CSV each with the snapshot date first;
* ``usage_changes`` (CSV): the changes between snapshots (``changes-<YYYYMMDD>.tsv``);
* ``bucket_stats`` (CSV): time-bucketed statistics (any other ``*.tsv`` the bucket
  report wrote beside them: ``<name>.tsv``);
* ``rejects`` (CSV): every input line the reports could not use, with its file and line.
"""

from __future__ import annotations

import csv
import datetime as dt
import platform
import re
from collections.abc import Iterable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from stages.ingress.registry import register

DATED = re.compile(r"^(?P<kind>[a-z-]+?)-(?P<date>\d{8})\.tsv$")


def _written_in(folder: Path, since: dt.datetime, until: dt.datetime) -> list[Path]:
    """The TSV reports in ``folder`` last written in ``[since, until)``, by name."""
    lo, hi = since.timestamp(), until.timestamp()
    return sorted(p for p in folder.glob("*.tsv") if lo <= p.stat().st_mtime < hi)


def _as_csv(files: Iterable[tuple[str, Path]], out: Path, first: str) -> Path | None:
    """TSV files as one CSV, each row led by its file's label (``first`` the column's
    name); None when there is nothing (the collection is empty)."""
    header: list[str] | None = None
    rows = 0
    with out.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        for label, path in files:
            with path.open(encoding="utf-8", newline="") as src:
                lines = csv.reader(src, delimiter="\t", quoting=csv.QUOTE_NONE)
                head = next(lines, None)
                if head is None:
                    continue
                if header is None:
                    header = [first, *head]
                    writer.writerow(header)
                elif [first, *head] != header:
                    msg = f"{path}: its columns differ from the other reports' of its kind"
                    raise ValueError(msg)
                for row in lines:
                    writer.writerow([label, *row])
                    rows += 1
    if not rows:
        out.unlink()
        return None
    return out


def _reports(kind: str, key: str, **kwargs: Any) -> Path | None:
    folder = Path(kwargs["report_dir"])
    files = []
    for p in _written_in(folder, kwargs["since"], kwargs["until"]):
        m = DATED.match(p.name)
        if m and m["kind"] == kind:
            files.append((m["date"], p))
    return _as_csv(files, Path(kwargs["full_path"]) / f"{key}.csv", "Date")


@register("config", "1.0", config=True, description="what produced the data, and where")
def config(**kwargs: Any) -> dict[str, Any]:
    try:
        ours = version("zpipeline")
    except PackageNotFoundError:
        ours = "unknown"
    return {
        "product": "zpipeline",
        "version": ours,
        "host": platform.node(),
        "python": platform.python_version(),
        "report_dir": str(kwargs.get("report_dir", "")),
        "collection_type": kwargs.get("collection_type", ""),
        "since": kwargs["since"].isoformat(),
        "until": kwargs["until"].isoformat(),
    }


@register("usage_groups", "1.0", format="csv", description="wrstat group usage reports")
def usage_groups(**kwargs: Any) -> Path | None:
    return _reports("group", "usage_groups", **kwargs)


@register("usage_users", "1.0", format="csv", description="wrstat user usage reports")
def usage_users(**kwargs: Any) -> Path | None:
    return _reports("user", "usage_users", **kwargs)


@register("usage_directories", "1.0", format="csv", description="wrstat directory reports")
def usage_directories(**kwargs: Any) -> Path | None:
    return _reports("directory", "usage_directories", **kwargs)


@register("usage_ages", "1.0", format="csv", description="wrstat age profiles per group")
def usage_ages(**kwargs: Any) -> Path | None:
    return _reports("ages", "usage_ages", **kwargs)


@register("usage_changes", "1.0", format="csv", description="changes between snapshots")
def usage_changes(**kwargs: Any) -> Path | None:
    return _reports("changes", "usage_changes", **kwargs)


@register("rejects", "1.0", format="csv", description="input lines the reports could not use")
def rejects(**kwargs: Any) -> Path | None:
    return _reports("rejects", "rejects", **kwargs)


@register("bucket_stats", "1.0", format="csv", description="time-bucketed statistics")
def bucket_stats(**kwargs: Any) -> Path | None:
    folder = Path(kwargs["report_dir"])
    files = [(p.stem, p) for p in _written_in(folder, kwargs["since"], kwargs["until"])
             if not DATED.match(p.name) and not p.stem.endswith("-rejects")]  # fmt: skip
    return _as_csv(files, Path(kwargs["full_path"]) / "bucket_stats.csv", "Report")
