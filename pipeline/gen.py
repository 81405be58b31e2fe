"""``pipeline gen KIND``: write sample input data.

The engine knows no data formats. Generators are contributed by stage packages through the
``pipeline.generators`` entry-point group: each entry point is a function that takes the
``gen`` sub-command's subparsers, adds its own parser and sets ``handler`` on it.
"""

from __future__ import annotations

import argparse
from importlib.metadata import entry_points
from typing import Any


def add_parser(sub: Any, *, kinds: bool = True) -> None:
    """Add ``gen`` to ``sub``; with ``kinds=False``, without its KINDs, whose modules import
    numpy and more: enough for every other command and for ``pipeline --help``."""
    gen = sub.add_parser(
        "gen",
        help="write sample input data",
        description="Write realistic sample input data for a topology.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    generators = gen.add_subparsers(dest="kind", metavar="KIND")
    generators.required = True
    if not kinds:
        return
    for ep in sorted(entry_points(group="pipeline.generators"), key=lambda e: e.name):
        ep.load()(generators)
