"""``waferdesk train``: train the segmentation U-Net (needs the 'ml' extra)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from ..core.errors import WaferDeskError


def register(sub: argparse._SubParsersAction) -> None:
    from ..ml.config import TRAIN_SEED, VAL_SEED, TrainConfig

    d = TrainConfig()
    p = sub.add_parser(
        "train",
        help="train the defect segmentation model on synthetic wafers (or a labelled .wdm file)",
        description="Train the U-Net on endless synthetic wafers (default) or a labelled .wdm file. "
        "The run directory gets config.json, checkpoints (last.pt, best.pt), metrics.json per "
        "evaluation and curves.png; --resume continues an interrupted run exactly.",
    )
    p.add_argument("--run-dir", type=Path, required=True, help="run directory (created; holds everything)")
    p.add_argument("--resume", action="store_true", help="continue the run in --run-dir from its last.pt")
    p.add_argument("--encoder", default=d.encoder, help=f"smp encoder (default {d.encoder}; resnet18/34: experiments)")
    p.add_argument(
        "--steps", type=int, help=f"optimizer steps (default {d.steps}); with --resume: a new length (cosine runs)"
    )
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="wafers per batch at 64x64 (fewer on larger)")
    p.add_argument("--lr", type=float, default=d.lr, help=f"peak learning rate (default {d.lr})")
    p.add_argument("--schedule", choices=("cosine", "onecycle"), default=d.schedule, help="lr schedule (warmup first)")
    p.add_argument("--min-size", type=int, default=d.min_size, help="smallest wafer, dies across")
    p.add_argument("--max-size", type=int, default=d.max_size, help="largest wafer, dies across")
    p.add_argument(
        "--pattern-weights",
        metavar="NAME=W,...",
        help="odds of drawing each pattern into a training wafer, e.g. scratch=2,lithography=2 (default: "
        "all 1; 0: never); validation keeps equal odds",
    )
    p.add_argument("--seed", type=int, default=TRAIN_SEED, help=f"training data / torch seed (default {TRAIN_SEED})")
    p.add_argument("--val-seed", type=int, default=VAL_SEED, help=f"validation data seed (default {VAL_SEED})")
    p.add_argument("--val-count", type=int, default=d.val_count, help="validation wafers")
    p.add_argument("--eval-every", type=int, default=d.eval_every, help="steps between evaluations ('epochs')")
    p.add_argument("--patience", type=int, default=d.patience, help="evaluations without progress before stopping")
    p.add_argument(
        "--minutes",
        type=float,
        help="time budget: stop after this many minutes of training (evaluations included); the cosine "
        "schedule follows the clock or the steps, whichever ends first (for a lent GPU's fixed minutes); "
        "with --resume: a new budget for the whole run",
    )
    p.add_argument("--ckpt-every", type=int, default=d.ckpt_every, help="steps between last.pt checkpoints")
    p.add_argument(
        "--data-workers",
        type=int,
        default=d.data_workers,
        help="processes making synthetic wafers ahead (0: in the training process; a GPU needs several)",
    )
    p.add_argument("--data", type=Path, help="train on this labelled .wdm file instead of the generator")
    p.add_argument("--real", type=Path, help="WM-811K npz: watch real-map accuracy / macro-F1 at every evaluation")
    p.add_argument("--real-per-label", type=int, default=d.real_per_label, help="real maps per WM-811K label")
    p.add_argument(
        "--init-from",
        type=Path,
        help="start from these weights (new optimizer): a checkpoint (.pt), or an exported model (.onnx with its card)",
    )
    p.add_argument(
        "--ema",
        type=float,
        default=d.ema,
        metavar="DECAY",
        help="evaluate, keep and export a moving average of the weights (e.g. 0.999: about the last "
        "1,000 steps); 0 (default): the weights as trained",
    )
    p.add_argument(
        "--freeze-bn",
        action="store_true",
        help="BatchNorm keeps its running statistics while training (fine-tuning with small batches)",
    )
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:1...")
    p.add_argument("--amp", choices=("auto", "off", "bf16", "fp16"), default="auto", help="mixed precision")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # OpenMP threads that spin while waiting burn their CPU share on a busy machine: measured
    # here (2 shared cores), a ResNet-50 step cost 5-14 CPU-seconds with the default policy
    # and 3.1-3.5 with PASSIVE, at equal or better wall time. Must be set before torch loads.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from .main import require_extra

    require_extra("torch", "ml")
    require_extra("segmentation_models_pytorch", "ml")
    from ..ml.config import TrainConfig, parse_pattern_weights
    from ..ml.train import train

    new_steps = args.steps
    args.steps = TrainConfig().steps if args.steps is None else args.steps  # --steps 0 is refused below
    if args.steps < 1 or args.batch_size < 1:
        raise WaferDeskError(f"--steps and --batch-size must be positive, got {args.steps} and {args.batch_size}")
    if args.minutes is not None and not args.minutes > 0:
        raise WaferDeskError(f"--minutes must be positive, got {args.minutes}")
    if args.minutes is not None and args.schedule != "cosine":  # refused before the run directory is written
        raise WaferDeskError(f"--minutes needs the cosine schedule (a {args.schedule} schedule has a fixed length)")
    if args.ckpt_every < 1 or args.data_workers < 0:
        raise WaferDeskError(
            f"--ckpt-every must be positive and --data-workers 0 or more, got {args.ckpt_every} and {args.data_workers}"
        )
    if args.eval_every < 1:  # every step % eval_every: 0 failed with ZeroDivisionError after the first step
        raise WaferDeskError(f"--eval-every must be at least 1 step, got {args.eval_every}")
    if args.seed < 0 or args.val_seed < 0:  # numpy's generators take no negative seed
        raise WaferDeskError(f"--seed and --val-seed must be 0 or more, got {args.seed} and {args.val_seed}")
    if args.threads is not None and args.threads < 1:  # 0 and below silently meant torch's default
        raise WaferDeskError(f"--threads must be at least 1, got {args.threads}")
    if not (args.ema == 0 or 0 < args.ema < 1):  # 1 would never move; above 1 or below 0 diverges
        raise WaferDeskError(f"--ema must be 0 (off) or a decay between 0 and 1, e.g. 0.999; got {args.ema}")
    if not 4 <= args.min_size <= args.max_size <= 1000:
        raise WaferDeskError(f"need 4 <= --min-size <= --max-size <= 1000, got {args.min_size}..{args.max_size}")
    if not args.resume and any((args.run_dir / name).exists() for name in ("last.pt", "best.pt")):
        raise WaferDeskError(  # a fresh run would overwrite that run's config and checkpoints
            f"{args.run_dir}: already holds a training run; --resume continues it, or choose a new --run-dir"
        )
    pattern_weights = None if args.pattern_weights is None else parse_pattern_weights(args.pattern_weights)
    if pattern_weights and args.data:
        raise WaferDeskError("--pattern-weights shapes the synthetic stream; it does nothing with --data FILE")
    if args.real is not None and not args.real.is_file():
        raise WaferDeskError(f"{args.real}: real-data file not found")
    cfg = TrainConfig(
        encoder=args.encoder,
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        schedule=args.schedule,
        min_size=args.min_size,
        max_size=args.max_size,
        pattern_weights=pattern_weights,
        seed=args.seed,
        val_seed=args.val_seed,
        val_count=args.val_count,
        eval_every=min(args.eval_every, args.steps),
        patience=args.patience,
        data=str(args.data) if args.data else None,
        real_path=str(args.real) if args.real else None,
        real_per_label=args.real_per_label,
        init_from=str(args.init_from) if args.init_from else None,
        device=args.device,
        amp=args.amp,
        threads=args.threads or 0,  # TrainConfig: 0 is torch's default
        minutes=args.minutes,
        ckpt_every=args.ckpt_every,
        data_workers=args.data_workers,
        ema=args.ema,
        freeze_bn=args.freeze_bn,
    )
    if cfg.seed == cfg.val_seed:
        raise WaferDeskError(
            f"--seed and --val-seed must differ (both {cfg.seed}): validate on wafers never trained on"
        )
    summary = train(
        cfg,
        args.run_dir,
        resume=args.resume,
        new_steps=new_steps if args.resume else None,
        new_minutes=args.minutes if args.resume else None,  # a resumed run keeps its budget unless given one
    )
    best = summary.get("best") or {}
    print(
        f"trained {summary['steps']} steps ({summary['wafers_seen']} wafers) in {summary['train_time_s'] / 60:.1f} min "
        f"on {summary['device']}{' (time budget used)' if summary.get('out_of_time') else ''}; "
        f"best validation mIoU {summary['best_val_miou']} at step {best.get('step')}; "
        f"run: {summary['run']}"
    )
    return 0
