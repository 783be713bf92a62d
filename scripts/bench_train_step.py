"""Seconds per CPU training step with glibc's default malloc against the tuned one
(waferdesk/ml/allocator.py), for each --amp mode asked for.

    .venv/bin/python scripts/bench_train_step.py [--steps 40] [--repeats 3] [--amp off bf16] [--threads 2]

Each run is a real ``waferdesk train`` process (default ResNet-50, endless synthetic wafers,
mixed canvases, batch 16 at 64x64) with ``WAFERDESK_MALLOC_TUNING`` set to 0 (baseline) or 1;
the two modes alternate so that drift on a shared machine hits both alike. A run's time per
step is read from its train_log.json (written every 5 steps) after the first 10 steps
(warm-up), so start-up and the final evaluation are not counted. Also printed: the share of
the process's CPU time spent in the kernel (page faults show up there). Median of --repeats.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

WARMUP = 10


def one_run(steps: int, amp: str, threads: int, tuned: bool, workdir: Path) -> tuple[float, float]:
    """(seconds per step after warm-up, kernel share of CPU time) of one training process."""
    run_dir = workdir / f"run-{amp}-{int(tuned)}-{len(list(workdir.iterdir()))}"
    cmd = [sys.executable, "-m", "waferdesk", "train", "--run-dir", str(run_dir), "--steps", str(steps),
           "--eval-every", str(steps), "--val-count", "4", "--amp", amp, "--threads", str(threads)]  # fmt: skip
    env = {**os.environ, "WAFERDESK_MALLOC_TUNING": "1" if tuned else "0"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    user, sys_ = after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime
    log = {e["step"]: e["t"] for e in json.loads((run_dir / "train_log.json").read_text())}
    summary = json.loads((run_dir / "summary.json").read_text())
    if summary["malloc_tuned"] != tuned:
        raise SystemExit(f"run asked for malloc tuning={tuned} but reports {summary['malloc_tuned']}")
    return (log[steps] - log[WARMUP]) / (steps - WARMUP), sys_ / (user + sys_)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--amp", nargs="+", default=["off", "bf16"], choices=["off", "bf16"])
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    if a.steps <= WARMUP or a.steps % 5:
        raise SystemExit(f"--steps {a.steps}: must be a multiple of 5 above {WARMUP}")
    print(f"CPU training step, ResNet-50 U-Net, {a.steps - WARMUP} timed steps per run, median of {a.repeats}")
    head = f"{'glibc default s/step':>20s} {'kernel':>7s} | {'tuned s/step':>12s} {'kernel':>7s}"
    print(f"{'amp':5s} | {head} | speed-up")
    with tempfile.TemporaryDirectory() as tmp:
        for amp in a.amp:
            runs: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
            for _ in range(a.repeats):
                for tuned in (False, True):
                    runs[tuned].append(one_run(a.steps, amp, a.threads, tuned, Path(tmp)))
            base, tuned = ([statistics.median(v) for v in zip(*runs[m], strict=True)] for m in (False, True))
            cells = f"{base[0]:20.3f} {base[1]:7.0%} | {tuned[0]:12.3f} {tuned[1]:7.0%}"
            print(f"{amp:5s} | {cells} | {base[0] / tuned[0]:.2f}x")
            print(f"      runs (s/step): default {[round(r[0], 3) for r in runs[False]]}, "
                  f"tuned {[round(r[0], 3) for r in runs[True]]}")  # fmt: skip


if __name__ == "__main__":
    main()
