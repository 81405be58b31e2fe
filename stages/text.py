"""Sample text for the word-count topology: ``pipeline gen text DIR``."""

from __future__ import annotations

import argparse
import random
from pathlib import Path
from typing import Any

_SYLLABLES = [
    "ka",
    "ri",
    "to",
    "ne",
    "su",
    "lo",
    "ma",
    "pe",
    "di",
    "vu",
    "sha",
    "gro",
    "tin",
    "el",
    "or",
]


def vocabulary(size: int, rng: random.Random) -> list[str]:
    words: dict[str, None] = {}
    while len(words) < size:
        words["".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(1, 4)))] = None
    return list(words)


def write_sample(folder: Path, files: int, lines: int, seed: int) -> list[Path]:
    """``files`` text files of ``lines`` lines each, with Zipf-distributed words."""
    rng = random.Random(seed)
    vocab = vocabulary(5000, rng)
    weights = [1.0 / (rank + 1) for rank in range(len(vocab))]
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(files):
        path = folder / f"part-{i:03d}.txt"
        with path.open("w", encoding="utf-8") as f:
            for _ in range(lines):
                words = rng.choices(vocab, weights, k=rng.randint(3, 14))
                f.write(" ".join(words).capitalize() + ".\n")
        paths.append(path)
    return paths


def _run(args: argparse.Namespace) -> int:
    paths = write_sample(Path(args.dir), args.files, args.lines, args.seed)
    print(f"wrote {len(paths)} files of {args.lines} lines to {args.dir}")
    return 0


def add_generator(kinds: Any) -> None:
    p = kinds.add_parser(
        "text",
        help="text files for the word-count topology",
        description="Write text files whose words follow a Zipf distribution.",
    )
    p.add_argument("dir", help="folder to write part-NNN.txt files into")
    p.add_argument("--files", type=int, default=4, help="number of files (default 4)")
    p.add_argument("--lines", type=int, default=20000, help="lines per file (default 20000)")
    p.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    p.set_defaults(handler=_run)
