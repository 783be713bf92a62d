"""Active-learning simulation: how many labels does each query strategy need?

A synthetic pool stands in for the unlabelled wafers (its ground truth is hidden until a
strategy "labels" a wafer), a held-out synthetic test set (its own seed) measures the model.
The simulation:

1. labels a random seed set of the pool and trains a small U-Net on it (shared by all
   strategies: round 0 is the same point on every curve);
2. each round, for each strategy: scores the pool with that strategy's current model
   (per-die probabilities -> :func:`~waferdesk.core.active.uncertainty_scores`, optional
   test-time-augmentation disagreement over dihedral symmetries, and the pooled embedding),
   picks the next ``batch`` wafers with :func:`waferdesk.core.active.select`, labels them,
   trains on the whole labelled set, and evaluates mIoU on the test set;
3. trains the same network once on the whole pool: the reference every strategy is held to.

Training cost is kept sane on a CPU by WARM STARTS: each round continues from the previous
round's weights of the same strategy, with a fresh AdamW and a short warmup + cosine
schedule of ``steps`` optimizer steps over the (grown) labelled set. The reference model
trains from scratch on the whole pool for the same total number of steps a strategy's final
model has had (``seed_steps + rounds * steps``), so the comparison is at equal compute and
only the data differs.

Every wafer is small (``SIZE_RANGE`` dies across; wafers whose grid would leave a 64x64
canvas, even after the training augmentation's margins, are skipped), so every batch is 16
wafers on one 64x64 canvas. Everything is a pure function of the config: pool, test set,
seed set, batches, augmentation, torch initialisation and every selection derive from its
seeds (torch on CPU with a fixed thread count repeats itself bit for bit).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from waferdesk.core.active import STRATEGIES, dihedral, dihedral_inverse, select, tta_disagreement
from waferdesk.core.active.scores import uncertainty_scores
from waferdesk.core.encoding import canvas_for
from waferdesk.core.errors import WaferDeskError
from waferdesk.core.inference import softmax
from waferdesk.core.records import WaferRecord
from waferdesk.core.synth import SynthConfig, generate_record

from .al_sim_config import SimConfig
from .config import TRAIN_SEED, TrainConfig
from .data import RecordBatches
from .device import pick_device
from .evaluate import synthetic_metrics
from .losses import SegLoss, class_frequencies, class_weights_from
from .model import WaferUnet, build_model
from .predict import die_logits, predict
from .train import _param_groups, make_scheduler

SIZE_RANGE = (22, 26)
"""Wafer diameters in dies: typical WM-811K sizes, small enough for one 64x64 canvas."""
CANVAS = (64, 64)
AUG_MARGIN = 2  # RecordBatches' augmentation pads up to this many empty rows/cols per side
LOW_IS_UNCERTAIN = ("margin_mean", "margin_min")  # ranked by 1 - margin, as the server does
TARGET_SHARE = 0.95
CLASS_FREQ_WAFERS = 300  # generator wafers (their own seed) the loss's class weights come from
CPU = torch.device("cpu")


# -- data ---------------------------------------------------------------------------------------
def fits_canvas(shape: tuple[int, int]) -> bool:
    """True when a grid, and every augmented copy of it, encodes on the 64x64 canvas."""
    grown = (shape[0] + 2 * AUG_MARGIN, shape[1] + 2 * AUG_MARGIN)
    return canvas_for(shape) == CANVAS and canvas_for(grown) == CANVAS


def small_wafers(seed: int, count: int) -> tuple[list[WaferRecord], int]:
    """The first ``count`` wafers of data set ``seed`` that fit the canvas, and how many were skipped."""
    cfg = SynthConfig(size_range=SIZE_RANGE)
    out: list[WaferRecord] = []
    i = 0
    while len(out) < count:
        rec = generate_record(seed, i, cfg)
        if fits_canvas(rec.wafer.shape):
            out.append(rec)
        i += 1
    return out, i - count


# -- model work ---------------------------------------------------------------------------------
def _subseed(*parts: int) -> int:
    """One int seed from several (RecordBatches and torch take a single int)."""
    return int(np.random.SeedSequence([abs(int(p)) for p in parts]).generate_state(1)[0])


def train_steps(
    model: WaferUnet,
    records: Sequence[WaferRecord],
    steps: int,
    cfg: SimConfig,
    seed: int,
    loss_fn: SegLoss,
    tick: Callable[[int], None] | None = None,
    device: torch.device = CPU,
) -> float:
    """``steps`` AdamW steps (warmup + cosine) over ``records``; returns the mean loss of the last 10."""
    torch.manual_seed(seed)
    batches = RecordBatches(records, seed, cfg.train_batch, min_batch=1)
    opt = torch.optim.AdamW(_param_groups(model, 1e-4), lr=cfg.lr)
    sched = make_scheduler(opt, TrainConfig(steps=steps, lr=cfg.lr, warmup=cfg.warmup, schedule="cosine"))
    model.train()
    losses: list[float] = []
    for _ in range(steps):
        x, y = next(batches)
        logits, _ = model(torch.from_numpy(x).to(device))
        loss, _ = loss_fn(logits, torch.from_numpy(y).to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
        if tick is not None:
            tick(1)
    model.eval()
    return float(np.mean(losses[-10:])) if losses else float("nan")


def evaluate_miou(
    model: WaferUnet, test: Sequence[WaferRecord], batch: int, device: torch.device = CPU
) -> dict[str, Any]:
    m = synthetic_metrics(test, predict(model, [r.wafer for r in test], batch, device))
    return {k: m[k] for k in ("miou", "class_iou", "die_accuracy")}


@dataclass
class PoolScores:
    """Scores of every pool wafer under one model (rows = pool positions)."""

    embeddings: np.ndarray  # (N, E)
    scores: dict[int, dict[str, float]]  # pool index -> score name -> value (unlabelled wafers only)


def score_pool(
    model: WaferUnet,
    pool: Sequence[WaferRecord],
    unlabelled: Sequence[int],
    uncertainty: bool,
    tta: int,
    batch: int,
    tick: Callable[[int], None] | None = None,
    device: torch.device = CPU,
) -> PoolScores:
    """Embeddings of the whole pool and, when asked, uncertainty (+ TTA) of the unlabelled part."""
    grids = [r.wafer.dies for r in pool]
    logits, embs = die_logits(model, grids, batch, device)
    if tick is not None:
        tick(len(pool))
    scores: dict[int, dict[str, float]] = {}
    if uncertainty:
        probs = {i: softmax(logits[i], axis=0) for i in unlabelled}
        for i in unlabelled:
            scores[i] = uncertainty_scores(probs[i], grids[i])
        if tta >= 2:
            aligned: dict[int, list[np.ndarray]] = {i: [probs[i]] for i in unlabelled}
            for k in range(1, tta):
                lk, _ = die_logits(model, [dihedral(grids[i], k) for i in unlabelled], batch, device)
                for i, z in zip(unlabelled, lk, strict=True):
                    aligned[i].append(dihedral_inverse(softmax(z, axis=0), k))
                if tick is not None:
                    tick(len(unlabelled))
            for i in unlabelled:
                scores[i].update(tta_disagreement(aligned[i], grids[i]))
    return PoolScores(np.stack(embs), scores)


def ranking(ps: PoolScores, idx: Sequence[int], key: str) -> np.ndarray:
    """Uncertainty of pool wafers ``idx`` by ``key``, higher = more uncertain."""
    u = np.array([ps.scores[i][key] for i in idx], dtype=np.float64)
    return 1.0 - u if key in LOW_IS_UNCERTAIN else u


# -- the simulation -----------------------------------------------------------------------------
NEEDS = {"random": set(), "uncertainty": {"u"}, "diversity": {"e"}, "hybrid": {"u", "e"}}


def _classes_of(records: Sequence[WaferRecord], idx: Sequence[int]) -> dict[str, int]:
    """How many of the wafers ``idx`` hold each class (ground truth, known once labelled)."""
    from waferdesk.core.taxonomy import default_taxonomy

    names = default_taxonomy().names
    out = dict.fromkeys(names, 0)
    for i in idx:
        m = records[i].mask
        assert m is not None
        for k in np.unique(m.labels[m.labels < len(names)]):
            out[names[int(k)]] += 1
    return out


def labels_to_target(curve: Sequence[dict[str, Any]], target: float, pool: int) -> dict[str, Any]:
    """The first measured budget whose mIoU reaches ``target``, and the saving vs the whole pool."""
    for p in curve:
        if p["miou"] is not None and p["miou"] >= target:
            return {
                "labels": p["labelled"],
                "saving_pct": round(100.0 * (1 - p["labelled"] / pool), 1),
                "reached": True,
            }
    return {"labels": None, "saving_pct": None, "reached": False, "best_miou": max(p["miou"] or 0 for p in curve)}


def compare_to_random(curves: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Each strategy vs random at every budget after the shared seed round."""
    if "random" not in curves:
        return {}
    base = {p["labelled"]: p["miou"] for p in curves["random"] if p["round"] > 0}
    out: dict[str, Any] = {}
    for s, curve in curves.items():
        if s == "random":
            continue
        diffs = [
            {"labelled": p["labelled"], "delta_miou": round(p["miou"] - base[p["labelled"]], 4)}
            for p in curve
            if p["round"] > 0 and p["labelled"] in base
        ]
        wins = sum(d["delta_miou"] > 0 for d in diffs)
        out[s] = {
            "budgets": diffs,
            "wins": wins,
            "losses": sum(d["delta_miou"] < 0 for d in diffs),
            "beats_random_at_every_budget": bool(diffs) and wins == len(diffs),
        }
    return out


def summarize(result: dict[str, Any]) -> None:
    """Fill in the target, labels-to-target and comparisons (also for a partial result)."""
    ref = result.get("reference")
    if ref and ref.get("miou") is not None:
        target = round(TARGET_SHARE * ref["miou"], 4)
        ref["target_miou"] = target
        result["labels_to_target"] = {
            s: labels_to_target(c, target, result["pool"]["size"]) for s, c in result["curves"].items()
        }
    result["vs_random"] = compare_to_random(result["curves"])
    hy = result["vs_random"].get("hybrid")
    result["hybrid_beats_random_at_every_budget"] = None if hy is None else hy["beats_random_at_every_budget"]


def simulate(
    cfg: SimConfig,
    progress: Any = None,
    on_update: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Run the whole simulation; returns the result (see docs/al-sim.md for its fields).

    ``progress``: a tqdm-like object (``update``, ``set_description``); ``on_update`` gets the
    partial result after every evaluation (to write it to disk as the run goes).
    """
    cfg.check()
    cfg = cfg.resolved()
    device = pick_device(cfg.device)
    torch.set_num_threads(cfg.threads)
    t_all = time.perf_counter()
    try:
        probe = build_model(cfg.encoder)
    except (KeyError, ValueError) as exc:
        raise WaferDeskError(
            f"--encoder {cfg.encoder!r}: not an encoder segmentation-models-pytorch has ({exc})"
        ) from None
    del probe

    def phase(text: str) -> None:
        if progress is not None:
            progress.set_description(text)

    tick = progress.update if progress is not None else None
    phase("make pool")
    pool, skipped = small_wafers(cfg.pool_seed, cfg.pool)
    test, test_skipped = small_wafers(cfg.test_seed, cfg.test)
    weights = class_weights_from(class_frequencies(TRAIN_SEED, SynthConfig(size_range=SIZE_RANGE), CLASS_FREQ_WAFERS))
    loss_fn = SegLoss(weights, 0.5).to(device)
    infer_batch = max(16, cfg.train_batch)

    result: dict[str, Any] = {
        "config": asdict(cfg),
        "pool": {"size": len(pool), "seed": cfg.pool_seed, "sizes_dies": list(SIZE_RANGE), "canvas": list(CANVAS),
                 "skipped_off_canvas": skipped},
        "test": {"size": len(test), "seed": cfg.test_seed, "skipped_off_canvas": test_skipped},
        "training": "warm start: each round continues from the strategy's previous weights, fresh AdamW, "
        f"{cfg.steps} steps warmup+cosine over the labelled set; reference: {cfg.full_steps} steps from scratch "
        "on the whole pool",
        "curves": {s: [] for s in cfg.strategies},
        "reference": None,
        "timing_s": {"train": 0.0, "score": 0.0, "evaluate": 0.0},
        "torch": torch.__version__,
        "device": str(device),
        "threads": torch.get_num_threads(),
    }  # fmt: skip
    timing = result["timing_s"]

    @contextmanager
    def clock(kind: str) -> Iterator[None]:
        t0 = time.perf_counter()
        yield
        timing[kind] = round(timing[kind] + time.perf_counter() - t0, 1)

    def emit() -> None:
        summarize(result)
        result["seconds"] = round(time.perf_counter() - t_all, 1)
        if on_update is not None:
            on_update(result)

    # round 0: a random seed set, one model shared by every strategy
    seed_idx = sorted(np.random.default_rng([cfg.seed, 0]).permutation(len(pool))[: cfg.seed_size].tolist())
    torch.manual_seed(_subseed(cfg.seed, 1))
    model = build_model(cfg.encoder).to(device)
    phase(f"round 0: train seed model ({cfg.seed_size} wafers)")
    with clock("train"):
        loss0 = train_steps(
            model, [pool[i] for i in seed_idx], cfg.seed_steps, cfg, _subseed(cfg.seed, 2), loss_fn, tick, device
        )
    phase("round 0: evaluate")
    with clock("evaluate"):
        ev0 = evaluate_miou(model, test, infer_batch, device)
    result["seed_indices"] = seed_idx
    seed_state = copy.deepcopy(model.state_dict())
    labelled: dict[str, list[int]] = {s: list(seed_idx) for s in cfg.strategies}
    states: dict[str, Any] = dict.fromkeys(cfg.strategies, seed_state)
    for s in cfg.strategies:
        result["curves"][s].append(
            {"round": 0, "labelled": len(seed_idx), "new": len(seed_idx), **ev0, "train_loss": round(loss0, 4)}
        )
    emit()

    for rnd in range(1, cfg.rounds + 1):
        # round 1: every strategy starts from the seed model and the seed set: score the pool once
        shared: PoolScores | None = None
        shared_u = rnd == 1 and any("u" in NEEDS[s] for s in cfg.strategies)
        for s in cfg.strategies:
            si = STRATEGIES.index(s)  # seeds follow the strategy, not its place in --strategies
            have = set(labelled[s])
            unl = [i for i in range(len(pool)) if i not in have]
            model.load_state_dict(states[s])
            model.eval()
            u = lab_emb = None
            emb = np.zeros((len(unl), 0))  # random uses neither scores nor embeddings, only their count
            if NEEDS[s]:
                ps = shared if rnd == 1 else None
                if ps is None:
                    phase(f"round {rnd} {s}: score {len(unl)} wafers")
                    with clock("score"):
                        ps = score_pool(
                            model, pool, unl, shared_u or "u" in NEEDS[s], cfg.tta, infer_batch, tick, device
                        )
                    shared = ps if rnd == 1 else None
                if "u" in NEEDS[s]:
                    u = ranking(ps, unl, cfg.score)
                if "e" in NEEDS[s]:
                    emb, lab_emb = ps.embeddings[unl], ps.embeddings[labelled[s]]
            picked = select(s, cfg.batch, u, emb, lab_emb, seed=_subseed(cfg.seed, rnd, si, 3),
                            pool_factor=cfg.pool_factor)  # fmt: skip
            new = [unl[i] for i in picked.indices]
            if have.intersection(new) or len(set(new)) != len(new):
                raise AssertionError(f"{s} picked already-labelled or repeated wafers")  # a bug, never user input
            labelled[s] = labelled[s] + new
            phase(f"round {rnd} {s}: train on {len(labelled[s])} wafers")
            with clock("train"):
                records = [pool[i] for i in labelled[s]]
                loss = train_steps(
                    model, records, cfg.steps, cfg, _subseed(cfg.seed, rnd, si, 4), loss_fn, tick, device
                )
            states[s] = copy.deepcopy(model.state_dict())
            phase(f"round {rnd} {s}: evaluate")
            with clock("evaluate"):
                ev = evaluate_miou(model, test, infer_batch, device)
            point: dict[str, Any] = {"round": rnd, "labelled": len(labelled[s]), "new": len(new), **ev,
                                     "train_loss": round(loss, 4), "picked": new}  # fmt: skip
            if u is not None:
                point["picked_mean_uncertainty"] = round(float(np.mean(picked.scores)), 4)
                point["pool_mean_uncertainty"] = round(float(np.mean(u)), 4)
            result["curves"][s].append(point)
            emit()

    for s in cfg.strategies:
        result["curves"][s][-1]["labelled_wafers_with_class"] = _classes_of(pool, labelled[s])

    # the reference: the same network, from scratch, on the whole pool, same total steps
    phase(f"reference: train on all {len(pool)} wafers")
    torch.manual_seed(_subseed(cfg.seed, 1))
    ref = build_model(cfg.encoder).to(device)
    with clock("train"):
        ref_loss = train_steps(ref, pool, cfg.full_steps, cfg, _subseed(cfg.seed, 5), loss_fn, tick, device)
    phase("reference: evaluate")
    with clock("evaluate"):
        ref_ev = evaluate_miou(ref, test, infer_batch, device)
    result["reference"] = {"labelled": len(pool), "steps": cfg.full_steps, **ref_ev, "train_loss": round(ref_loss, 4)}
    emit()
    return result


def total_work(cfg: SimConfig) -> int:
    """Progress units of a run (training steps + wafers scored), for one progress bar."""
    c = cfg.resolved()
    steps = c.seed_steps + c.rounds * c.steps * len(c.strategies) + c.full_steps
    tta = max(0, c.tta - 1)
    scorers = [s for s in c.strategies if NEEDS[s]]
    any_u = any("u" in NEEDS[s] for s in scorers)
    scored = (c.pool + tta * (c.pool - c.seed_size) * any_u) if scorers else 0
    for rnd in range(2, c.rounds + 1):
        unl = c.pool - c.seed_size - (rnd - 1) * c.batch
        scored += sum(c.pool + tta * unl * ("u" in NEEDS[s]) for s in scorers)
    return steps + scored
