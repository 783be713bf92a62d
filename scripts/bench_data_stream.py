"""How fast the synthetic training stream makes batches, with 0, 1, 2... worker processes.

A GPU step on a batch wants its wafers faster than one CPU core makes them; this prints the
stream's own rate (batches and wafers a second, batch 16 at 64x64, the default mix of sizes)
per worker count, the median of several interleaved runs, and the ratio to the in-process
stream. Usage: python scripts/bench_data_stream.py [--workers 0 1 2] [--batches 60] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from waferdesk.ml.data import SynthStream


def rate(workers: int, batches: int, seed: int) -> tuple[float, float]:
    stream = SynthStream(seed, batch_size=16, workers=workers)
    try:
        next(stream)  # starts the workers; not timed
        w0, t0 = stream.state.next_index, time.perf_counter()
        for _ in range(batches):
            next(stream)
        dt = time.perf_counter() - t0
        return batches / dt, (stream.state.next_index - w0) / dt
    finally:
        stream.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--batches", type=int, default=60)
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    runs: dict[int, list[tuple[float, float]]] = {w: [] for w in a.workers}
    for r in range(a.runs):
        for w in a.workers:  # interleaved, so a busy moment hits every count alike
            runs[w].append(rate(w, a.batches, seed=1000 + r))
    print(f"synthetic training stream, {os.cpu_count()} CPUs, {a.batches} batches per run, median of {a.runs}")
    print("workers  batches/s  wafers/s  vs in-process   runs (batches/s)")
    base = statistics.median(b for b, _ in runs[a.workers[0]])
    for w in a.workers:
        b = statistics.median(x for x, _ in runs[w])
        wf = statistics.median(y for _, y in runs[w])
        print(f"{w:>7}  {b:>9.1f}  {wf:>8.0f}  {b / base:>12.2f}x   {[round(x, 1) for x, _ in runs[w]]}")


if __name__ == "__main__":
    main()
