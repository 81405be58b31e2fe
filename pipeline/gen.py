"""``pipeline gen KIND``: write sample input data.

The engine knows no data formats. Generators are contributed by stage packages through the
``pipeline.generators`` entry-point group: each entry point is a function that takes the
``gen`` sub-command's subparsers, adds its own parser and sets ``handler`` on it.
"""

from __future__ import annotations

import argparse
from importlib.metadata import entry_points
from typing import Any


def add_parser(sub: Any) -> None:
    gen = sub.add_parser(
        "gen",
        help="write sample input data",
        description="Write realistic sample input data for a topology.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    kinds = gen.add_subparsers(dest="kind", metavar="KIND")
    kinds.required = True
    for ep in sorted(entry_points(group="pipeline.generators"), key=lambda e: e.name):
        ep.load()(kinds)
