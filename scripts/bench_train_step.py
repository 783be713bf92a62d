"""Seconds per CPU training step in fp32 (the default on a CPU) against bf16 autocast
(``--amp bf16``), to decide which one a long CPU run should use on this machine.

    .venv/bin/python scripts/bench_train_step.py [--steps 30] [--repeats 3] [--threads 2] [--ema 0.999]
    git worktree add /tmp/base HEAD~1 && .venv/bin/python scripts/bench_train_step.py --baseline-tree /tmp/base

Each run is a real ``waferdesk train`` process (default ResNet-50, endless synthetic wafers,
mixed canvases, batch 16 at 64x64, fewer on larger), so data generation and the changing
canvas sizes count as they do in a real run; the two modes alternate so that drift on a
shared machine (other guests' steal time) hits both alike. A run's time per step is read from
its train_log.json (written every 5 steps) after the first 10 steps (warm-up: oneDNN builds
its kernels per canvas shape), so start-up and the final evaluation are not counted. Also
printed: the share of the process's CPU time spent in the kernel. Median of --repeats.

bf16 pays only on CPUs with native bf16 (AVX-512 BF16, AMX); without it, it is many times
slower (docs/ml.md). Whether it trains as well is a different question this does not answer.

``--baseline-tree DIR`` also runs every mode with the code of another checkout (e.g. a git
worktree of the commit before a speed change), interleaved with this one's, and the ratios
are taken against that checkout's first mode: a change is measured against what it replaced,
on the same machine at the same time.
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
MODES = ("off", "bf16")  # the first is the baseline


def one_run(steps: int, amp: str, a: argparse.Namespace, workdir: Path, tree: Path) -> tuple[float, float]:
    """(seconds per step after warm-up, kernel share of CPU time) of one training process
    running the code in ``tree``."""
    run_dir = workdir / f"run-{amp}-{len(list(workdir.iterdir()))}"
    cmd = [sys.executable, "-m", "waferdesk", "train", "--run-dir", str(run_dir), "--steps", str(steps),
           "--eval-every", str(steps), "--val-count", "4", "--amp", amp, "--threads", str(a.threads)]  # fmt: skip
    if a.ema:
        cmd += ["--ema", str(a.ema)]
    env = {**os.environ, "PYTHONPATH": str(tree)}  # ahead of the venv's editable install
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(
        cmd, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env, cwd=tree
    )
    if done.returncode:  # e.g. --amp bf16 refused, or no torch: say why in one line, not a traceback
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise SystemExit(f"waferdesk train --amp {amp} ({tree}) failed (exit {done.returncode}): {last}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    user, kernel = after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime
    log = {e["step"]: e["t"] for e in json.loads((run_dir / "train_log.json").read_text())}
    return (log[steps] - log[WARMUP]) / (steps - WARMUP), kernel / (user + kernel)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ema", type=float, default=0.999, help="as the shipped recipe; 0 = no weight average")
    ap.add_argument("--baseline-tree", type=Path, help="also run the code of this checkout, as the baseline")
    a = ap.parse_args()
    if a.steps <= WARMUP or a.steps % 5:
        raise SystemExit(f"--steps {a.steps}: must be a multiple of 5 above {WARMUP}")
    here = Path(__file__).resolve().parents[1]
    trees = {"this": here}
    if a.baseline_tree:
        if not (a.baseline_tree / "waferdesk" / "__init__.py").is_file():
            raise SystemExit(f"--baseline-tree {a.baseline_tree}: no waferdesk package there")
        trees = {"baseline": a.baseline_tree.resolve(), **trees}
    variants = [(name, amp) for name in trees for amp in MODES]
    print(f"CPU training step, ResNet-50 U-Net, {a.steps - WARMUP} timed steps per run, median of {a.repeats}"
          f" (ema {a.ema or 'off'})")  # fmt: skip
    for name, tree in trees.items():
        print(f"  {name}: {tree}")
    runs: dict[tuple[str, str], list[tuple[float, float]]] = {v: [] for v in variants}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(a.repeats):
            for name, amp in variants:
                runs[name, amp].append(one_run(a.steps, amp, a, Path(tmp), trees[name]))
    base = statistics.median(r[0] for r in runs[variants[0]])
    ref = " ".join(variants[0])
    print(f"{'code':9s} {'--amp':6s} {'s/step':>7s} {'kernel':>7s}  speed-up vs {ref}   runs (s/step)")
    for name, amp in variants:
        med = statistics.median(r[0] for r in runs[name, amp])
        kernel = statistics.median(r[1] for r in runs[name, amp])
        rs = [round(r[0], 3) for r in runs[name, amp]]
        print(f"{name:9s} {amp:6s} {med:7.3f} {kernel:7.0%}  {base / med:16.2f}x   {rs}")


if __name__ == "__main__":
    main()
