"""``waferdesk synth``: write a file of synthetic wafers with per-die ground truth."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from ..core.errors import WaferDeskError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("synth", help="generate synthetic wafers with ground-truth masks")
    p.add_argument("--count", type=int, required=True, help="number of wafers")
    p.add_argument("--seed", type=int, default=0, help="data-set seed (same seed, same wafers)")
    p.add_argument("--out", type=Path, required=True, help="output file (.wdm)")
    p.add_argument("--min-size", type=int, default=15, help="smallest wafer, dies across (default 15)")
    p.add_argument("--max-size", type=int, default=200, help="largest wafer, dies across (default 200)")
    p.add_argument("--workers", type=int, default=0, help="processes (default: all cores)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..core.formats import write_wdm
    from ..core.synth import SynthConfig, generate_parallel
    from .progress import bar

    if args.count < 1:
        raise WaferDeskError(f"--count must be at least 1, got {args.count}")
    if args.seed < 0:  # numpy's generators take no negative seed
        raise WaferDeskError(f"--seed must be 0 or more, got {args.seed}")
    if args.workers < 0:  # read as "one process" before
        raise WaferDeskError(f"--workers must be 0 (all cores) or a positive count, got {args.workers}")
    if args.out.suffix.lower() != ".wdm":  # the file is a .wdm archive whatever its name says
        raise WaferDeskError(f"--out must name a .wdm file, got {args.out}")
    if not 4 <= args.min_size <= args.max_size <= 1000:
        raise WaferDeskError(f"need 4 <= --min-size <= --max-size <= 1000, got {args.min_size}..{args.max_size}")
    cfg = SynthConfig(size_range=(args.min_size, args.max_size))
    t0 = time.perf_counter()
    records = []
    with bar(args.count, "synth") as pb:
        for chunk in generate_parallel(args.count, args.seed, cfg, workers=args.workers):
            records += chunk
            pb.update(len(chunk))
    out = write_wdm(args.out, records)
    dt = time.perf_counter() - t0
    print(f"wrote {len(records)} wafers to {out} in {dt:.1f} s ({len(records) / dt:.0f} wafers/s)")
    return 0
