"""Training: endless synthetic batches, AdamW + one-cycle schedule, checkpoints, early stopping.

A run directory holds everything about one run:
- ``config.json``   the :class:`~waferdesk.ml.config.TrainConfig` (class weights filled in)
- ``last.pt``       model + optimizer + schedule + data-stream state (resume from here)
- ``best.pt``       weights of the best evaluation so far (by synthetic validation mIoU; with
                    ``ema`` the moving average of the weights is what is evaluated and kept)
- ``metrics.json``  one entry per evaluation ("epoch" = ``eval_every`` steps: the data is
                    endless): loss, lr, per-class IoU, mIoU, verdict accuracy, and the wafer-level
                    accuracy / macro-F1 on a fixed subset of real WM-811K maps
- ``train_log.json`` loss and lr every few steps; ``curves.png`` the training curves.

The real-map numbers are watched, never trained on, and never used to pick the checkpoint
(``select_on`` = synthetic validation mIoU), so the real score stays an honest measure of how
realistic the generator is.
"""

from __future__ import annotations

import json
import math
import time
import warnings
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from waferdesk.core.atomic import atomic_open
from waferdesk.core.encoding import canvas_for, decode, encode_batch, encode_labels
from waferdesk.core.errors import WaferDeskError
from waferdesk.core.records import WaferRecord
from waferdesk.core.synth import SynthConfig
from waferdesk.core.taxonomy import IGNORE
from waferdesk.core.wafer import FAIL, LabelMask, WaferMap

from .config import TrainConfig
from .data import (
    RecordBatches,
    StreamState,
    SynthStream,
    batch_for,
    load_wm811k,
    read_labelled,
    stratified_subset,
    synthetic_set,
    wm811k_labels,
)
from .device import pick_device
from .ema import WeightAverage
from .evaluate import Predicted, predicted_from_mask, real_metrics, synthetic_metrics
from .fingerprint import git_commit, synth_source_sha256
from .losses import SegLoss, class_frequencies, class_weights_from
from .model import WaferUnet, build_model
from .predict import predict

LOG_EVERY = 5
# a step whose loss or gradient is not finite is skipped (the weights are not touched); this
# many in a row means the run has diverged, and it stops with last.pt still the last good state
MAX_NONFINITE_STEPS = 20


def amp_dtype(cfg: TrainConfig, device: torch.device) -> torch.dtype | None:
    """Autocast dtype, or None for fp32. On CPU autocast is off unless asked for (``--amp bf16``):
    it depends on the CPU. A batch-16 64x64 ResNet-50 step measured ~18x SLOWER in bf16 than in
    fp32 on a Zen 1 EPYC (no native bf16), and 1.3x faster (0.44 vs 0.57 s) on an EPYC with
    AVX-512 BF16."""
    mode = cfg.amp
    if mode == "off" or (mode == "auto" and device.type != "cuda"):
        return None
    if mode == "bf16" or (mode == "auto" and torch.cuda.is_bf16_supported()):
        return torch.bfloat16
    return torch.float16


def synth_config(cfg: TrainConfig, *, training: bool = False) -> SynthConfig:
    """The generator's settings for this run: ``training`` applies ``pattern_weights``.

    Validation always draws patterns at equal odds, so runs with and without re-weighting are
    compared on the same wafers and the checkpoint is chosen on the distribution users are
    measured on.
    """
    base = SynthConfig(size_range=(cfg.min_size, cfg.max_size))
    if not training or not cfg.pattern_weights:
        return base
    return replace(base, class_weights={**base.class_weights, **cfg.pattern_weights})


def _param_groups(model: torch.nn.Module, wd: float) -> list[dict[str, Any]]:
    decay, no_decay = [], []
    for _, p in model.named_parameters():
        (no_decay if p.ndim <= 1 else decay).append(p)
    return [{"params": decay, "weight_decay": wd}, {"params": no_decay, "weight_decay": 0.0}]


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig, device: torch.device) -> torch.optim.AdamW:
    """AdamW with decoupled weight decay on weights only, as its fused kernel where torch has
    one for ``device`` (CPU and CUDA): one pass over all 32 M parameters instead of a dozen
    element-wise passes, which on two CPU cores took 0.115 s of a 0.56 s step (0.023 s fused).
    The same update rule; checkpoints load into either form, so a run may resume across it."""
    fused = device.type in ("cpu", "cuda")
    return torch.optim.AdamW(_param_groups(model, cfg.weight_decay), lr=cfg.lr, fused=fused)


def make_scheduler(
    opt: torch.optim.Optimizer, cfg: TrainConfig, clock: Callable[[], float] | None = None
) -> torch.optim.lr_scheduler.LRScheduler:
    """The learning-rate schedule: warm-up then cosine decay over ``cfg.steps`` (or one-cycle).

    With a time budget (``cfg.minutes``) the cosine runs over whichever comes first, the steps
    or the minutes: its position is the larger of the step fraction and the share of the
    budget that ``clock()`` (training seconds so far) has used. A lent GPU gives a fixed number
    of minutes, not of steps, and how many steps fit is only known once it runs."""
    if cfg.minutes:
        if cfg.schedule != "cosine":
            raise WaferDeskError(f"--minutes needs the cosine schedule (a {cfg.schedule} schedule has a fixed length)")
        budget, tick = cfg.minutes * 60.0, clock or (lambda: 0.0)

        def by_clock(step: int) -> float:
            p = min(1.0, max((step + 1) / max(1, cfg.steps), tick() / budget))
            if p < cfg.warmup:
                return max(p / cfg.warmup, 1.0 / max(1, cfg.steps))
            t = (p - cfg.warmup) / max(1e-9, 1.0 - cfg.warmup)
            return 0.005 + 0.995 * 0.5 * (1 + math.cos(math.pi * t))

        return torch.optim.lr_scheduler.LambdaLR(opt, by_clock)
    if cfg.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            opt,
            max_lr=cfg.lr,
            total_steps=max(2, cfg.steps),
            pct_start=max(0.01, cfg.warmup),
            div_factor=20.0,
            final_div_factor=200.0,
            cycle_momentum=False,
        )
    warm = max(1, int(cfg.warmup * cfg.steps))

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        t = (step - warm) / max(1, cfg.steps - warm)
        return 0.005 + 0.995 * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


@torch.no_grad()
def validate(
    model: torch.nn.Module,
    records: Sequence[WaferRecord],
    loss_fn: SegLoss,
    device: torch.device,
    batch_size: int,
) -> tuple[float, list[Predicted]]:
    """Validation loss (pixel-weighted mean) and predictions, in one pass, per canvas."""
    was_training = model.training
    model.eval()
    groups: dict[tuple[int, int], list[int]] = defaultdict(list)
    for i, r in enumerate(records):
        groups[canvas_for(r.wafer.shape)].append(i)
    preds: list[Predicted | None] = [None] * len(records)
    total, weight = 0.0, 0
    for canvas, idx in groups.items():
        step = batch_for(canvas, batch_size, 1) * 2
        for s in range(0, len(idx), step):
            chunk = [records[i] for i in idx[s : s + step]]
            x, places = encode_batch([r.wafer.dies for r in chunk])
            y = np.stack([encode_labels(r.mask.labels, p, IGNORE) for r, p in zip(chunk, places, strict=True)])  # type: ignore[union-attr]
            logits, _ = model(torch.from_numpy(x).to(device))
            loss, _ = loss_fn(logits, torch.from_numpy(y).to(device))
            n = int((y != IGNORE).sum())
            total += float(loss) * n
            weight += n
            out = logits.float().cpu().numpy()
            for j, rec in enumerate(chunk):
                z = decode(out[j], places[j])
                lab = np.where(rec.wafer.dies == FAIL, z.argmax(axis=0), IGNORE).astype(np.uint8)
                preds[idx[s + j]] = predicted_from_mask(rec.wafer, LabelMask(lab))
    model.train(was_training)
    return total / max(1, weight), preds  # type: ignore[return-value]


def _save(obj: dict[str, Any], path: Path) -> None:
    with atomic_open(path, "wb") as fh:
        torch.save(obj, fh)


def _write_json(path: Path, data: Any) -> None:
    with atomic_open(path) as fh:
        fh.write(json.dumps(data, indent=1) + "\n")


def load_checkpoint_model(path: str | Path, device: str = "cpu") -> tuple[WaferUnet, dict[str, Any]]:
    """A network and its checkpoint dict from ``best.pt`` / ``last.pt`` (weights only are used)."""
    try:
        ck = torch.load(str(path), map_location=device, weights_only=False)
        cfg = ck.get("config", {})
        model = build_model(cfg.get("encoder", "resnet50"))
        model.load_state_dict(ck["model"])
    except Exception as exc:  # unpickling, not a dict, no "model" entry, weights of another network
        raise WaferDeskError(f"{path}: not a WaferDesk checkpoint ({type(exc).__name__}: {exc})") from None
    return model.eval(), ck


def load_initial_weights(path: str | Path) -> tuple[WaferUnet, dict[str, Any]]:
    """Weights to start a run from, and what they are (the lineage kept in the run's config and
    the exported card): a checkpoint (``best.pt``/``last.pt``) or an exported ``.onnx`` model
    with its card (BatchNorm un-fused by :func:`waferdesk.ml.recover.recover`), so a shipped
    or deployed model can be fine-tuned when its run directory is gone."""
    p = Path(path)
    if not p.is_file():
        raise WaferDeskError(f"--init-from {p}: no such file")
    if p.suffix.lower() == ".onnx":
        from waferdesk.core.modelcard import card_path_for, load_card

        from .recover import recover

        card = load_card(card_path_for(p))
        kept = ("steps", "wafers_seen", "train_time_s", "data")
        lineage = {
            "onnx": p.name,
            "model_version": card.version,
            "sha256": card.sha256,
            "training": {k: card.training[k] for k in kept if k in card.training},
        }
        return recover(p, card), lineage
    try:
        model, ck = load_checkpoint_model(p)
    except WaferDeskError as exc:  # already says what is wrong with the file
        raise WaferDeskError(f"--init-from {exc}") from None
    except Exception as exc:  # unpickling, a missing "model" entry, mismatched weights
        raise WaferDeskError(f"--init-from {p}: not a WaferDesk checkpoint ({type(exc).__name__}: {exc})") from None
    return model, {"checkpoint": str(p), "step": ck.get("step")}


def train(
    cfg: TrainConfig,
    run_dir: str | Path,
    resume: bool = False,
    show_progress: bool = True,
    log: Callable[[str], None] = print,
    new_steps: int | None = None,
    new_minutes: float | None = None,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Train (or resume) a run; returns the run's summary (also in ``summary.json``).

    ``new_steps`` (resume only, cosine schedule only) changes the run's length: the cosine
    curve is re-stretched from the current step, so a slow machine can end a run sooner.
    ``new_minutes`` (resume only, cosine) does the same for the time budget: a run stopped to
    free the machine can be given the minutes that are left, or more when more came free.
    """
    device = pick_device(cfg.device)  # a bad --device fails before anything is written
    run = Path(run_dir)
    run.mkdir(parents=True, exist_ok=True)
    ck: dict[str, Any] | None = None
    if resume:
        last = run / "last.pt"
        if not last.is_file():
            raise WaferDeskError(f"{run}: no last.pt to resume from")
        ck = torch.load(str(last), map_location="cpu", weights_only=False)
        saved = TrainConfig(**{k: v for k, v in ck["config"].items() if k in asdict(cfg)})
        # a resumed run keeps its recipe (the schedule's length included); only where it runs may change
        saved.device, saved.threads, saved.data_workers = cfg.device, cfg.threads, cfg.data_workers
        at, used = int(ck["step"]), float(ck.get("elapsed", 0.0)) / 60.0
        changes = {  # a new length for the run, in steps or minutes: the cosine is re-stretched from here
            "steps": (new_steps, at, f"already at step {at}; --steps must be larger"),
            "minutes": (new_minutes, used, f"already trained {used:.1f} min; --minutes must be larger"),
        }
        for name, (new, done, too_small) in changes.items():
            if not new or new == getattr(saved, name):
                continue
            if saved.schedule != "cosine":
                raise WaferDeskError(
                    f"{run}: a {saved.schedule} schedule has a fixed length; only cosine runs can change"
                )
            if new <= done:
                raise WaferDeskError(f"{run}: {too_small}")
            saved.extra.setdefault(f"{name}_changed", []).append(
                {"at_step": at, "from": getattr(saved, name), "to": new}
            )
            setattr(saved, name, new)
        cfg = saved
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed % (2**32))
    scfg = synth_config(cfg, training=True)
    if cfg.class_weights is None:  # the loss weights follow what the training stream draws
        cfg.class_weights = class_weights_from(class_frequencies(cfg.seed, scfg))
    sha = synth_source_sha256()
    if cfg.extra.setdefault("synth_sha256", sha) != sha:  # the generator changed under a resumed run
        cfg.extra.setdefault("synth_sha256_resumed", []).append(sha)
    cfg.extra.setdefault("git_commit", git_commit())
    fine_tuning = bool(cfg.init_from) and ck is None
    if fine_tuning:  # before config.json: a bad --init-from leaves nothing behind
        init, cfg.extra["init"] = load_initial_weights(str(cfg.init_from))
        if init.encoder_name != cfg.encoder:
            raise WaferDeskError(
                f"--init-from {cfg.init_from}: a {init.encoder_name} model, but this run trains a {cfg.encoder}"
            )
    cfg.save(run / "config.json")

    model = build_model(cfg.encoder).to(device)
    model.frozen_batchnorm = cfg.freeze_bn
    if fine_tuning:
        model.load_state_dict(init.state_dict())
        del init
    loss_fn = SegLoss(cfg.class_weights, cfg.dice_weight).to(device)
    opt = make_optimizer(model, cfg, device)
    elapsed, t_start = 0.0, time.perf_counter()  # training seconds: restored on resume, t_start reset below
    sched = make_scheduler(opt, cfg, clock=lambda: elapsed + time.perf_counter() - t_start)
    adt = amp_dtype(cfg, device)
    scaler = torch.amp.GradScaler("cuda", enabled=adt == torch.float16)

    if cfg.data:
        stream: SynthStream | RecordBatches = RecordBatches(
            read_labelled(cfg.data), cfg.seed, cfg.batch_size, cfg.min_batch
        )
    else:
        stream = SynthStream(cfg.seed, scfg, cfg.batch_size, cfg.min_batch, workers=cfg.data_workers)
    val = synthetic_set(cfg.val_seed, cfg.val_count, synth_config(cfg))
    real: list[WaferMap] = []
    if cfg.real_path and Path(cfg.real_path).is_file():
        idx = stratified_subset(wm811k_labels(cfg.real_path), cfg.real_per_label, seed=0)
        real = load_wm811k(cfg.real_path, idx)

    step, history, train_log, best, elapsed = 0, [], [], -1.0, 0.0
    bad_evals = skipped = 0  # skipped: steps with a non-finite loss or gradient, over the whole run
    if ck is not None:
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        sched.load_state_dict(ck["scheduler"])
        if "scaler" in ck:
            scaler.load_state_dict(ck["scaler"])
        stream.state = StreamState.from_json(ck["stream"])
        step, history, train_log = ck["step"], ck["history"], ck["train_log"]
        best, bad_evals, elapsed = ck["best"], ck.get("bad_evals", 0), ck.get("elapsed", 0.0)
        skipped = ck.get("skipped", 0)
        log(f"resumed {run} at step {step}/{cfg.steps}")
    # with --ema the moving average is the network that is evaluated, kept as best.pt and exported
    ema = WeightAverage(model, cfg.ema) if cfg.ema else None
    if ema is not None and ck is not None and "ema" in ck:
        ema.load_state_dict(ck["ema"])
    scored = ema.model if ema is not None else model

    def state(extra: dict[str, Any] | None = None) -> dict[str, Any]:
        d = {
            "model": model.state_dict(),
            "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict(),
            "scaler": scaler.state_dict(),
            "stream": stream.state.to_json(),
            "step": step,
            "history": history,
            "train_log": train_log,
            "best": best,
            "bad_evals": bad_evals,
            "skipped": skipped,
            "elapsed": elapsed + (time.perf_counter() - t_start),
            "config": asdict(cfg),
            "architecture": model.architecture(),
        }
        if ema is not None:
            d["ema"] = ema.state_dict()
        d.update(extra or {})
        return d

    def evaluate_now() -> dict[str, Any]:
        nonlocal best, bad_evals
        t0 = time.perf_counter()
        vloss, preds = validate(scored, val, loss_fn, device, cfg.batch_size)
        entry: dict[str, Any] = {
            "epoch": len(history) + 1,
            "step": step,
            "wafers_seen": stream.state.next_index,
            "time_s": round(elapsed + time.perf_counter() - t_start, 1),
            "lr": opt.param_groups[0]["lr"],
            "train_loss": (
                float(np.mean([t["loss"] for t in train_log[-50:]]))
                if train_log
                else (float(np.mean(window)) if window else None)  # before the first LOG_EVERY steps
            ),
            "val_loss": vloss,
            "val": {k: v for k, v in synthetic_metrics(val, preds).items() if k != "confusion"},
        }
        if real:
            r = real_metrics(real, predict(scored, real, cfg.batch_size, device))
            entry["real"] = {k: v for k, v in r.items() if k != "confusion"}
        entry["eval_s"] = round(time.perf_counter() - t0, 1)
        history.append(entry)
        score = entry["val"]["miou"] or 0.0
        if score > best:
            best, bad_evals = score, 0
            _save({"model": scored.state_dict(), "step": step, "metrics": entry, "config": asdict(cfg),
                   "architecture": model.architecture()}, run / "best.pt")  # fmt: skip
        else:
            bad_evals += 1
        _write_json(run / "metrics.json", history)
        _write_json(run / "train_log.json", train_log)
        try:
            from .plots import plot_curves

            plot_curves(history, train_log, run / "curves.png", f"{cfg.encoder} U-Net, run {run.name}")
        except Exception as exc:  # a plotting problem must not kill hours of training
            log(f"curves.png not written: {exc}")
        msg = f"step {step}: val loss {vloss:.4f}, mIoU {entry['val']['miou']}"
        if real:
            msg += f", real acc {entry['real']['accuracy']}, macro-F1 {entry['real']['macro_f1']}"
        log(msg)
        if on_epoch is not None:  # e.g. the server's training worker reports every epoch
            on_epoch(entry)
        return entry

    from tqdm import tqdm

    model.train()
    t_start = time.perf_counter()
    bar = tqdm(total=cfg.steps, initial=step, desc="train", unit="step", disable=not show_progress, dynamic_ncols=True)
    stopped_early = out_of_time = False
    window: list[float] = []
    nonfinite_run = 0  # non-finite steps in a row
    budget_s = cfg.minutes * 60.0 if cfg.minutes else math.inf
    if fine_tuning:  # the starting model's numbers are the bar to beat
        evaluate_now()
    try:
        while step < cfg.steps:
            x, y = next(stream)
            xt, yt = torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)
            with torch.autocast(device.type, dtype=adt or torch.float32, enabled=adt is not None):
                logits, _ = model(xt)
            loss, parts = loss_fn(logits, yt)
            opt.zero_grad(set_to_none=True)
            bad = None if torch.isfinite(loss) else "loss"  # what was not finite, if anything
            if bad is None:
                scaler.scale(loss).backward()
                scaler.unscale_(opt)
                norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
                # fp16's scaler skips overflowing steps itself (and lowers its scale); elsewhere a
                # non-finite gradient would write NaN into every weight and the average
                if not scaler.is_enabled() and not torch.isfinite(norm):
                    bad = "gradient"
            if bad is None:
                scaler.step(opt)
                scaler.update()
                if ema is not None:
                    ema.update(model)
                window.append(float(loss.detach()))
                nonfinite_run = 0
                sched.step()
            else:  # the batch is used up (resume stays exact) and the step counted, but nothing learnt
                nonfinite_run += 1
                skipped += 1
                log(f"step {step + 1}: non-finite {bad} on a {x.shape[2]}x{x.shape[3]} batch; step skipped")
                if nonfinite_run >= MAX_NONFINITE_STEPS:
                    kept = (
                        f"{run / 'last.pt'} holds the last checkpoint before it"
                        if (run / "last.pt").is_file()
                        else "no checkpoint was written before it"
                    )
                    raise WaferDeskError(
                        f"training diverged at step {step + 1}: {nonfinite_run} steps in a row had a non-finite "
                        f"loss or gradient; {kept}"
                    )
                # on a skipped first step torch warns that the schedule moved before the optimiser
                with warnings.catch_warnings(action="ignore", category=UserWarning):
                    sched.step()
            step += 1
            # the budget counts training time only: evaluations are paid from it too, so the
            # last one (and the export after it) still fits in a lent machine's minutes
            out_of_time = elapsed + time.perf_counter() - t_start >= budget_s
            last = step == cfg.steps or out_of_time
            if step % LOG_EVERY == 0 or last:
                train_log.append(
                    {"step": step, "loss": float(np.mean(window)) if window else math.nan, **parts,
                     "lr": opt.param_groups[0]["lr"], "canvas": list(x.shape[2:]),
                     "t": round(elapsed + time.perf_counter() - t_start, 1), "skipped": skipped}
                )  # fmt: skip
                window = []
            bar.set_postfix(
                loss=f"{train_log[-1]['loss']:.4f}" if train_log else "-", canvas=f"{x.shape[2]}x{x.shape[3]}"
            )
            bar.update(1)
            if step % cfg.eval_every == 0 or last:
                evaluate_now()
                _save(state(), run / "last.pt")
                if out_of_time:
                    log(f"time budget of {cfg.minutes:g} min used at step {step}")
                    break
                if bad_evals >= cfg.patience:
                    log(f"early stop at step {step}: no better validation mIoU for {bad_evals} evaluations")
                    stopped_early = True
                    break
            elif step % cfg.ckpt_every == 0:
                _save(state(), run / "last.pt")
    finally:
        bar.close()
        if isinstance(stream, SynthStream):
            stream.close()
    total_s = elapsed + time.perf_counter() - t_start
    summary = {
        "run": str(run),
        "steps": step,
        "wafers_seen": stream.state.next_index,
        "train_time_s": round(total_s, 1),
        "stopped_early": stopped_early,
        "skipped_nonfinite_steps": skipped,
        "out_of_time": out_of_time,
        "best_val_miou": best,
        "best": next((h for h in history if h["val"]["miou"] == best), None),
        "last": history[-1] if history else None,
        "device": str(device),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }
    _write_json(run / "summary.json", summary)
    return summary
