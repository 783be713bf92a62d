"""Seconds per CPU training step in fp32 (the default on a CPU) against bf16 autocast
(``--amp bf16``), to decide which one a long CPU run should use on this machine.

    .venv/bin/python scripts/bench_train_step.py [--steps 30] [--repeats 3] [--threads 2]

Each run is a real ``waferdesk train`` process (default ResNet-50, endless synthetic wafers,
mixed canvases, batch 16 at 64x64, fewer on larger), so data generation and the changing
canvas sizes count as they do in a real run; the two modes alternate so that drift on a
shared machine (other guests' steal time) hits both alike. A run's time per step is read from
its train_log.json (written every 5 steps) after the first 10 steps (warm-up: oneDNN builds
its kernels per canvas shape), so start-up and the final evaluation are not counted. Also
printed: the share of the process's CPU time spent in the kernel. Median of --repeats.

bf16 pays only on CPUs with native bf16 (AVX-512 BF16, AMX); without it, it is many times
slower (docs/ml.md). Whether it trains as well is a different question this does not answer.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

WARMUP = 10
MODES = ("off", "bf16")  # the first is the baseline


def one_run(steps: int, amp: str, threads: int, workdir: Path) -> tuple[float, float]:
    """(seconds per step after warm-up, kernel share of CPU time) of one training process."""
    run_dir = workdir / f"run-{amp}-{len(list(workdir.iterdir()))}"
    cmd = [sys.executable, "-m", "waferdesk", "train", "--run-dir", str(run_dir), "--steps", str(steps),
           "--eval-every", str(steps), "--val-count", "4", "--amp", amp, "--threads", str(threads)]  # fmt: skip
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(cmd, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if done.returncode:  # e.g. --amp bf16 refused, or no torch: say why in one line, not a traceback
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise SystemExit(f"waferdesk train --amp {amp} failed (exit {done.returncode}): {last}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    user, kernel = after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime
    log = {e["step"]: e["t"] for e in json.loads((run_dir / "train_log.json").read_text())}
    return (log[steps] - log[WARMUP]) / (steps - WARMUP), kernel / (user + kernel)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    if a.steps <= WARMUP or a.steps % 5:
        raise SystemExit(f"--steps {a.steps}: must be a multiple of 5 above {WARMUP}")
    print(f"CPU training step, ResNet-50 U-Net, {a.steps - WARMUP} timed steps per run, median of {a.repeats}")
    runs: dict[str, list[tuple[float, float]]] = {m: [] for m in MODES}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(a.repeats):
            for amp in MODES:
                runs[amp].append(one_run(a.steps, amp, a.threads, Path(tmp)))
    base = statistics.median(r[0] for r in runs[MODES[0]])
    print(f"{'--amp':6s} {'s/step':>7s} {'kernel':>7s}  speed-up vs fp32   runs (s/step)")
    for amp in MODES:
        med = statistics.median(r[0] for r in runs[amp])
        kernel = statistics.median(r[1] for r in runs[amp])
        print(f"{amp:6s} {med:7.3f} {kernel:7.0%}  {base / med:16.2f}x   {[round(r[0], 3) for r in runs[amp]]}")


if __name__ == "__main__":
    main()
