"""``waferdesk realism``: real WM-811K maps per label beside synthetic maps of the matching class."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..core.errors import WaferDeskError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("realism", help="draw real WM-811K maps beside synthetic ones, per label (PNG)")
    p.add_argument("--real", type=Path, required=True, help="real maps with WM-811K labels (.npz, .pkl, .wdm ...)")
    p.add_argument("--out", type=Path, required=True, help="picture to write (.png)")
    p.add_argument("--per-label", type=int, default=6, help="maps per side and label (default 6)")
    p.add_argument("--seed", type=int, default=0, help="picks the real maps and the synthetic ones (default 0)")
    p.add_argument("--tile", type=int, default=96, help="pixels per map (default 96)")
    p.add_argument(
        "--stats", type=int, default=200, help="synthetic maps per label for the printed numbers (default 200, 0: none)"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..core.formats import read_any
    from ..core.realism import LABELS, realism_picture, stats, synthetic_for
    from ..core.render import save_png
    from .progress import bar

    if args.seed < 0:  # numpy's generators take no negative seed
        raise WaferDeskError(f"--seed must be 0 or more, got {args.seed}")
    if args.stats < 0:  # read as 0 (no numbers) before
        raise WaferDeskError(f"--stats must be 0 (no numbers) or a positive count, got {args.stats}")
    if not 1 <= args.per_label <= 50:
        raise WaferDeskError(f"--per-label must be 1..50, got {args.per_label}")
    if not 16 <= args.tile <= 512:
        raise WaferDeskError(f"--tile must be 16..512 pixels, got {args.tile}")
    if args.out.suffix.lower() != ".png":
        raise WaferDeskError(f"--out must name a .png file, got {args.out}")
    real = [r.wafer for r in read_any(args.real)]
    if not any(w.label in LABELS for w in real):
        raise WaferDeskError(f"{args.real}: no map carries a WM-811K label ({', '.join(LABELS)})")
    img = realism_picture(real, per_label=args.per_label, seed=args.seed, tile_px=args.tile)
    save_png(img, args.out)
    print(f"wrote {args.out} ({img.shape[1]}x{img.shape[0]} px)")
    if args.stats > 0:
        head = f"{'label':<10} {'n real':>6}  {'dies across real | synth (q25 q50 q75)':<44} "
        print(head + "fail rate real | synth (q25 q50 q75)")
        with bar(len(LABELS), "stats", unit="label") as pb:
            lines = []
            for label in LABELS:
                reals = [w for w in real if w.label == label]
                s = stats(reals, synthetic_for(label, args.seed + 1, args.stats))
                across = " ".join(f"{v:4.0f}" for v in s["real_across"]) + " | "
                across += " ".join(f"{v:4.0f}" for v in s["synth_across"])
                fail = (
                    " ".join(f"{v:.2f}" for v in s["real_fail"]) + " | " + " ".join(f"{v:.2f}" for v in s["synth_fail"])
                )
                lines.append(f"{label:<10} {len(reals):>6}  {across:<44} {fail}")
                pb.update(1)
        print("\n".join(lines))
    return 0
