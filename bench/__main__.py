"""``python -m bench NAME``: run one benchmark (``python -m bench --help`` lists them)."""

from __future__ import annotations

import sys

BENCHMARKS = {
    "transport": ("bench.transport", "the engine against multiprocessing.Queue graphs"),
    "wrstat": ("bench.wrstat", "wrstat reports end to end against a lurge-style loop"),
    "history": ("bench.history", "usage history to SQLite and MariaDB vs row-by-row INSERTs"),
    "buckets": ("bench.buckets", "a day of MetPX logs through the buckets, and a graph from cache"),
    "diff": ("bench.diff", "file-level diff of two 10M-line files vs a dict-based diff"),
    "ingress": ("bench.ingress", "tarballs packaged and shipped, concurrent vs one at a time"),
    "scaleout": ("bench.scaleout", "wrstat stages over tcp with CURVE against ipc"),
    "scaling": ("bench.scaling", "wrstat reports while usage is scaled 1 -> 2 -> 1, vs unscaled"),
}


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] not in BENCHMARKS:
        print("usage: python -m bench NAME [--help]\n\nbenchmarks:")
        for name, (_, what) in BENCHMARKS.items():
            print(f"  {name:<10} {what}")
        return 0 if len(sys.argv) > 1 and sys.argv[1] in ("-h", "--help") else 2
    module = __import__(BENCHMARKS[sys.argv[1]][0], fromlist=["main"])
    return int(module.main(sys.argv[2:]))


if __name__ == "__main__":
    sys.exit(main())
