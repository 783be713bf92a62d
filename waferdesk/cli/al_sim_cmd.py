"""``waferdesk al-sim``: the active-learning simulation benchmark (needs the 'ml' extra).

How many labelled wafers each query strategy (random, uncertainty, diversity, hybrid) needs
to reach 95 % of the mIoU of a model trained on the whole pool; see docs/al-sim.md.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from ..core.atomic import atomic_open
from ..core.errors import WaferDeskError

JSON_NAME = "al-sim.json"
PNG_NAME = "al-sim.png"


def register(sub: argparse._SubParsersAction) -> None:
    from ..ml.al_sim_config import POOL_SEED, SCORE_KEYS, TEST_SEED, SimConfig

    d = SimConfig()
    p = sub.add_parser(
        "al-sim",
        help="active-learning benchmark: labels each query strategy needs to reach 95%% of full-pool mIoU",
        description="Simulates active learning on a synthetic pool with hidden ground truth: a random seed "
        "set, then rounds of score -> select (random / uncertainty / diversity / hybrid) -> label -> train "
        "(warm start from the strategy's previous weights) -> test mIoU; plus one model trained on the whole "
        "pool. Reports the mIoU curve per strategy and the labels each needs to reach 95%% of the whole-pool "
        "mIoU. Deterministic for a given --seed and --threads.",
    )
    p.add_argument("--pool", type=int, default=d.pool, help=f"unlabelled pool, wafers (default {d.pool})")
    p.add_argument("--test", type=int, default=d.test, help=f"held-out test wafers (default {d.test})")
    p.add_argument("--seed-size", type=int, default=d.seed_size, help=f"random seed set (default {d.seed_size})")
    p.add_argument("--batch", type=int, default=d.batch, help=f"wafers labelled per round (default {d.batch})")
    p.add_argument("--rounds", type=int, default=d.rounds, help=f"query rounds after the seed (default {d.rounds})")
    p.add_argument("--steps", type=int, default=d.steps, help=f"training steps per round (default {d.steps})")
    p.add_argument("--seed-steps", type=int, default=0, help="steps of the seed model (default: --steps)")
    p.add_argument(
        "--full-steps", type=int, default=0, help="steps of the whole-pool reference (default: seed + rounds x steps)"
    )
    p.add_argument(
        "--strategies", default=",".join(d.strategies), help=f"comma-separated (default {','.join(d.strategies)})"
    )
    p.add_argument("--score", default=d.score, help=f"uncertainty score that ranks ({', '.join(SCORE_KEYS)})")
    p.add_argument("--tta", type=int, default=d.tta, help="test-time symmetries for TTA disagreement (0: off; 2..8)")
    p.add_argument("--encoder", default=d.encoder, help=f"smp encoder (default {d.encoder})")
    p.add_argument("--train-batch", type=int, default=d.train_batch, help=f"wafers per step (default {d.train_batch})")
    p.add_argument("--lr", type=float, default=d.lr, help=f"peak learning rate (default {d.lr})")
    p.add_argument("--pool-seed", type=int, default=POOL_SEED, help=f"pool's generator seed (default {POOL_SEED})")
    p.add_argument("--test-seed", type=int, default=TEST_SEED, help=f"test set's generator seed (default {TEST_SEED})")
    p.add_argument("--seed", type=int, default=d.seed, help="seed of the seed set, torch, batches and selections")
    p.add_argument("--threads", type=int, default=d.threads, help=f"torch CPU threads (default {d.threads})")
    p.add_argument("--device", default=d.device, help="auto (CUDA when present), cpu, cuda, cuda:1...")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.add_argument("--out", type=Path, help=f"write {JSON_NAME} (updated every round) and {PNG_NAME} here")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.set_defaults(func=run)


def config_from(args: argparse.Namespace) -> Any:
    from ..ml.al_sim_config import SimConfig

    strategies = tuple(s.strip() for s in args.strategies.split(",") if s.strip())
    cfg = SimConfig(
        pool=args.pool,
        test=args.test,
        seed_size=args.seed_size,
        batch=args.batch,
        rounds=args.rounds,
        steps=args.steps,
        seed_steps=args.seed_steps,
        full_steps=args.full_steps,
        strategies=strategies,
        score=args.score,
        tta=args.tta,
        encoder=args.encoder,
        train_batch=args.train_batch,
        lr=args.lr,
        pool_seed=args.pool_seed,
        test_seed=args.test_seed,
        seed=args.seed,
        threads=args.threads,
        device=args.device,
    )
    cfg.check()
    return cfg


def _write_json(path: Path, data: Any) -> None:
    with atomic_open(path) as fh:
        fh.write(json.dumps(data, indent=1) + "\n")


def run(args: argparse.Namespace) -> int:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see train_cmd: spinning threads waste a busy CPU
    cfg = config_from(args)  # bad flags fail here, before torch loads
    if args.out is not None:
        if args.out.exists() and not args.out.is_dir():
            raise WaferDeskError(f"--out {args.out}: exists and is not a directory")
        args.out.mkdir(parents=True, exist_ok=True)
    from .main import require_extra

    require_extra("torch", "ml")
    require_extra("segmentation_models_pytorch", "ml")
    from ..ml.al_sim import simulate, total_work
    from .progress import bar

    def save(partial: dict[str, Any]) -> None:
        if args.out is not None:
            _write_json(args.out / JSON_NAME, partial)

    with bar(total_work(cfg), "al-sim", unit="step", disable=args.no_progress) as pb:
        result = simulate(cfg, pb, save)
    if args.out is not None:
        from ..ml.plots import plot_al_curves

        save(result)
        plot_al_curves(result, args.out / PNG_NAME)
    print(json.dumps(result) if args.json else render_text(result))
    return 0


def render_text(r: dict[str, Any]) -> str:
    c, ref = r["config"], r["reference"]
    lines = [
        f"pool {r['pool']['size']} wafers (seed {r['pool']['seed']}), test {r['test']['size']} (seed "
        f"{r['test']['seed']}); {c['encoder']} U-Net, seed set {c['seed_size']}, {c['rounds']} rounds of "
        f"{c['batch']}, {c['steps']} steps/round (warm start), score {c['score']}, tta {c['tta']}; "
        f"{r['seconds']:.0f} s",
        f"whole pool ({ref['labelled']} labels, {ref['steps']} steps): mIoU {ref['miou']}; "
        f"95% target {ref['target_miou']}",
    ]
    budgets = [p["labelled"] for p in next(iter(r["curves"].values()))]
    lines.append(f"{'labelled':<12}" + "".join(f"{b:>8}" for b in budgets) + "   labels to 95%  saving")
    for s, curve in r["curves"].items():
        t = r["labels_to_target"][s]
        reach = f"{t['labels']:>14}  {t['saving_pct']:>5}%" if t["reached"] else f"{'not reached':>14}  {'-':>6}"
        lines.append(f"{s:<12}" + "".join(f"{p['miou']:>8.4f}" for p in curve) + f"   {reach}")
    for s, v in r["vs_random"].items():
        lines.append(f"{s} vs random: better at {v['wins']} of {len(v['budgets'])} budgets, worse at {v['losses']}")
    return "\n".join(lines)
