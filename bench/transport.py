"""``python -m bench transport``: the engine against hand-written multiprocessing.Queue graphs.

(a) 1 MiB numpy arrays through 3 stages (source -> pass-through -> sink), GB/s;
(b) ~100-byte dict records through 3 stages with default batching, records/s;
(c) a CPU-bound stage with 1 and 2 replicas, against the machine's own ceiling: the same
    work in one process versus split over two independent processes.

Every figure is the median of 3 runs, engine and baseline taking turns.

Times run from the source's first item to the sink's last, so process start-up is not
counted on either side.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.stages import MIB, POOL, burn, records
from pipeline import AnalysisFrame
from pipeline.topology import BatchSpec

GB = 1e9
#: records per batch, on both sides: the engine's default
BATCH = BatchSpec().size


def _marks(folder: Path, name: str) -> str:
    path = folder / f"{name}.json"
    path.unlink(missing_ok=True)
    return str(path)


def _engine(frame: AnalysisFrame, marks: str) -> dict[str, float]:
    report = frame.run(log_level=30)
    if not report.ok:
        raise SystemExit(f"benchmark run failed: {report.errors}")
    return json.loads(Path(marks).read_text())  # type: ignore[no-any-return]


def _pass_through(folder: Path, name: str, source: str, count: int) -> dict[str, float]:
    """source -> identity -> counting sink, on the engine; the marks of the run."""
    marks = _marks(folder, name)
    frame = AnalysisFrame(f"bench-{name}", run_dir=folder / f"run-{name}")
    params = {"count": count, "marks": marks}
    frame.add_stage(f"bench.stages:{source}", "src", next_stage="mid", params=params)
    frame.add_stage("bench.stages:identity", "mid", next_stage="sink")
    frame.add_stage("bench.stages:CountSink", "sink", params={"marks": marks})
    return _engine(frame, marks)


# ---------------------------------------------------------------- (a) arrays
def engine_arrays(folder: Path, count: int) -> float:
    m = _pass_through(folder, "arrays", "array_source", count)
    assert m["bytes"] == count * MIB, m
    return count * MIB / (m["end"] - m["start"]) / GB


def _q_array_source(q: Any, count: int, t: Any) -> None:
    block = np.arange(MIB // 8, dtype=np.int64)
    t.value = time.time()
    for _ in range(count):
        q.put(block)
    q.put(None)


def _drain(q: Any) -> Any:
    while (item := q.get()) is not None:
        yield item


def _q_pass(qin: Any, qout: Any) -> None:
    for item in _drain(qin):
        qout.put(item)
    qout.put(None)


def _q_array_sink(q: Any, t: Any, n: Any) -> None:
    total = 0
    for item in _drain(q):
        total += item.nbytes
    t.value = time.time()
    n.value = total


def _three(
    ctx: Any, source: Any, source_args: tuple[Any, ...], sink: Any, window: int
) -> tuple[float, float]:
    q1, q2 = ctx.Queue(window), ctx.Queue(window)
    t0, t1, n = ctx.Value("d"), ctx.Value("d"), ctx.Value("q")
    procs = [
        ctx.Process(target=source, args=(q1, *source_args, t0)),
        ctx.Process(
            target=_q_pass_batches if source is _q_record_source else _q_pass, args=(q1, q2)
        ),
        ctx.Process(target=sink, args=(q2, t1, n)),
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    return t1.value - t0.value, float(n.value)


def queue_arrays(count: int) -> float:
    seconds, nbytes = _three(mp.get_context("fork"), _q_array_source, (count,), _q_array_sink, 16)
    assert nbytes == count * MIB
    return nbytes / seconds / GB


# ---------------------------------------------------------------- (b) records
def engine_records(folder: Path, count: int) -> float:
    m = _pass_through(folder, "records", "record_source", count)
    assert m["records"] == count, m
    return count / (m["end"] - m["start"])


def _q_record_source(q: Any, count: int, t: Any) -> None:
    base = records()
    t.value = time.time()
    batch = []
    for k in range(count):
        batch.append(base[k % POOL])
        if len(batch) == BATCH:
            q.put(batch)
            batch = []
    if batch:
        q.put(batch)
    q.put(None)


def _identity(r: Any) -> Any:
    return r


def _q_pass_batches(qin: Any, qout: Any) -> None:
    for batch in _drain(qin):
        qout.put([_identity(r) for r in batch])
    qout.put(None)


def _q_record_sink(q: Any, t: Any, n: Any) -> None:
    total = 0
    for batch in _drain(q):
        total += len(batch)
    t.value = time.time()
    n.value = total


def queue_records(count: int) -> float:
    seconds, n = _three(mp.get_context("fork"), _q_record_source, (count,), _q_record_sink, 16)
    assert n == count
    return count / seconds


# ---------------------------------------------------------------- (c) cpu
def engine_cpu(folder: Path, items: int, loops: int, replicas: int) -> float:
    marks = _marks(folder, f"cpu{replicas}")
    frame = AnalysisFrame(f"bench-cpu{replicas}", run_dir=folder / f"run-cpu{replicas}")
    frame.add_stage(
        "bench.stages:numbered",
        "src",
        next_stage="burn",
        params={"count": items, "marks": marks},
        batch={"size": 4},
    )
    frame.add_stage(
        "bench.stages:burn",
        "burn",
        next_stage="sink",
        replicas=replicas,
        params={"loops": loops},
        batch={"size": 4},
        backpressure={"credit": 2},
    )
    frame.add_stage("bench.stages:CountSink", "sink", params={"marks": marks})
    m = _engine(frame, marks)
    assert m["records"] == items, m
    return m["end"] - m["start"]


def _work(items: int, loops: int) -> None:
    for n in range(items):
        burn({"n": n}, None, loops)  # type: ignore[arg-type]


def ceiling(items: int, loops: int) -> float:
    """Speed-up of two independent processes over one, on this machine, now."""
    ctx = mp.get_context("fork")

    def timed(parts: int) -> float:
        procs = [ctx.Process(target=_work, args=(items // parts, loops)) for _ in range(parts)]
        t0 = time.perf_counter()
        for p in procs:
            p.start()
        for p in procs:
            p.join()
        return time.perf_counter() - t0

    return timed(1) / timed(2)


def calibrate(target_ms: float) -> int:
    loops = 20000
    t0 = time.perf_counter()
    burn({"n": 0}, None, loops)  # type: ignore[arg-type]
    per_loop = (time.perf_counter() - t0) / loops
    return max(1000, int(target_ms / 1000 / per_loop))


# ---------------------------------------------------------------- main
def _medians(engine: Any, baseline: Any, runs: int = 3) -> tuple[float, float]:
    """Median of ``runs`` alternating runs of each."""
    pairs = [(engine(), baseline()) for _ in range(runs)]
    return statistics.median(p[0] for p in pairs), statistics.median(p[1] for p in pairs)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench transport",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="smaller runs (a smoke test)")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = parser.parse_args(argv)
    scale = 0.2 if args.quick else 1.0
    figures: dict[str, Any] = {}
    ok = True
    with tempfile.TemporaryDirectory(prefix="bench-transport-") as tmp:
        folder = Path(tmp)
        n_arrays = int(3000 * scale)
        eng_a, q_a = _medians(
            lambda: engine_arrays(folder, n_arrays), lambda: queue_arrays(n_arrays)
        )
        ratio_a = eng_a / q_a
        good = eng_a >= 1.0 and ratio_a >= 3.0
        ok &= good
        print(f"(a) 1 MiB numpy arrays, 3 stages ({n_arrays} arrays):")
        print(
            f"    engine {eng_a:.2f} GB/s, multiprocessing.Queue {q_a:.2f} GB/s, "
            f"ratio {ratio_a:.2f}x"
            f"   [need >= 1 GB/s and >= 3x: {verdict(good)}]"
        )
        figures["arrays"] = {"engine_gbps": eng_a, "queue_gbps": q_a, "ratio": ratio_a}

        n_rec = int(5_000_000 * scale)
        eng_b, q_b = _medians(lambda: engine_records(folder, n_rec), lambda: queue_records(n_rec))
        ratio_b = eng_b / q_b
        good = eng_b >= 500_000 and ratio_b >= 1.0
        ok &= good
        print(f"(b) ~100-byte dict records, 3 stages, batches of {BATCH} ({n_rec:,} records):")
        print(
            f"    engine {eng_b:,.0f} rec/s, multiprocessing.Queue {q_b:,.0f} rec/s, "
            f"ratio {ratio_b:.2f}x"
            f"   [need >= 500,000/s and >= 1x: {verdict(good)}]"
        )
        figures["records"] = {"engine_rps": eng_b, "queue_rps": q_b, "ratio": ratio_b}

        loops = calibrate(2.0)
        items = int(1000 * scale)
        runs = [
            (
                engine_cpu(folder, items, loops, 1),
                engine_cpu(folder, items, loops, 2),
                ceiling(items, loops),
            )
            for _ in range(3)
        ]
        one, two, ceil = (statistics.median(r[i] for r in runs) for i in range(3))
        speedup = one / two
        share = speedup / ceil
        good = share >= 0.85
        ok &= good
        print(f"(c) CPU-bound stage, {items} items of ~2 ms:")
        print(
            f"    1 replica {one:.2f} s, 2 replicas {two:.2f} s: speed-up {speedup:.2f}x; "
            f"two independent processes {ceil:.2f}x; {100 * share:.0f}% of the ceiling"
            f"   [need >= 85%: {verdict(good)}]"
        )
        figures["cpu"] = {
            "one": one,
            "two": two,
            "speedup": speedup,
            "ceiling": ceil,
            "share": share,
        }
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))
    return 0 if ok else 1
