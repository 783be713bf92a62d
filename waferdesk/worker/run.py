"""One training job from start to end (see :mod:`waferdesk.worker`)."""

from __future__ import annotations

import math
import platform
import socket
import sys
import traceback
from pathlib import Path
from typing import Any

from waferdesk.core.errors import WaferDeskError
from waferdesk.core.records import WaferRecord

from .api import JobEndedError, WorkerClient
from .report import Reporter

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_JOB_ENDED = 0, 1, 2, 3
ERROR_TAIL_LINES = 15
PARALLEL_SYNTH_FROM = 2000  # synthetic wafers made in several processes from this many on


def describe(exc: BaseException) -> str:
    """An exception in words: our own errors say it all; others get their type name."""
    if isinstance(exc, WaferDeskError):
        return str(exc)
    text = str(exc).strip() or "(no message)"
    return f"{type(exc).__name__}: {text if len(text) <= 500 else text[:500] + ' ...'}"


def _finite(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    return v


def epoch_payload(entry: dict[str, Any]) -> dict[str, Any]:
    """An evaluation entry of :func:`waferdesk.ml.train.train` -> the server's per-epoch metrics."""
    val = entry.get("val") or {}
    extra = {k: entry[k] for k in ("wafers_seen", "time_s", "eval_s") if k in entry}
    extra.update(
        {
            k: val[k]
            for k in ("die_accuracy", "verdict_accuracy", "primary_verdict_accuracy", "n_wafers", "n_fail_dies")
            if k in val
        }
    )
    if entry.get("real"):
        extra["real"] = {k: v for k, v in entry["real"].items() if k in ("accuracy", "macro_f1", "n_wafers")}
    return _finite(
        {
            "epoch": int(entry["epoch"]),
            "step": int(entry["step"]),
            "train_loss": entry.get("train_loss"),
            "val_loss": entry.get("val_loss"),
            "lr": entry.get("lr"),
            "miou": val.get("miou"),
            "class_iou": dict(val.get("class_iou") or {}),
            "extra": extra,
        }
    )


def training_set(client: WorkerClient, spec: dict[str, Any], work: Path, say: Any) -> tuple[Path, dict[str, int]]:
    """The job's annotated wafers (from the server) + its synthetic wafers, as one .wdm file."""
    from waferdesk.core.formats import read_wdm, write_wdm
    from waferdesk.core.synth import SynthConfig, generate, generate_parallel

    data = spec.get("data") or {}
    records: list[WaferRecord] = []
    if data.get("annotations", True):
        path = work / "data" / "annotations.wdm"
        client.dataset(path)
        records = [r for r in read_wdm(path) if r.mask is not None]
    annotated = len(records)
    count = int(data.get("synthetic_count") or 0)
    if count:
        seed = data.get("synthetic_seed")
        seed = int(spec["seed"] if seed is None else seed)
        cfg = SynthConfig(size_range=(int(data.get("min_size", 15)), int(data.get("max_size", 200))))
        if count >= PARALLEL_SYNTH_FROM:
            for chunk in generate_parallel(count, seed, cfg):
                records += chunk
        else:
            records += list(generate(count, seed=seed, cfg=cfg))
    say(f"training set: {annotated} annotated wafers + {count} synthetic")
    if not records:
        raise WaferDeskError(
            "the training set is empty: the server sent no annotated wafers and data.synthetic_count is 0"
        )
    out = write_wdm(work / "data" / "train.wdm", records)
    return out, {"annotated_wafers": annotated, "synthetic_wafers": count}


def train_config(spec: dict[str, Any], data_path: Path, job_id: int) -> Any:
    from waferdesk.ml.config import TrainConfig

    steps, epochs = int(spec["steps"]), int(spec["epochs"])
    data = spec.get("data") or {}
    cfg = TrainConfig(
        encoder=spec["encoder"],
        steps=steps,
        batch_size=int(spec["batch_size"]),
        lr=float(spec["learning_rate"]),
        schedule=spec.get("schedule", "cosine"),
        min_size=int(data.get("min_size", 15)),
        max_size=int(data.get("max_size", 200)),
        seed=int(spec["seed"]),
        val_seed=int(spec["val_seed"]),
        val_count=int(spec["val_count"]),
        data=str(data_path),
        eval_every=max(1, math.ceil(steps / epochs)),
        patience=int(spec.get("patience") or 10**9),  # no early stop unless the spec asks
        device=spec.get("device", "auto"),
        threads=int(spec.get("threads") or 0),
        ema=float(spec.get("ema") or 0.0),
        freeze_bn=bool(spec.get("freeze_bn", False)),
        notes=f"training job {job_id}",
    )
    cfg.extra["training_job"] = job_id
    return cfg


def run_job(client: WorkerClient, work_dir: Path, reporter: Reporter | None = None) -> int:
    """Run the job end to end; the exit status says how it went (0 ok, 1 failed, 3 ended on the server)."""
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    rep = reporter or Reporter(client)
    rep.start()
    say = rep.line
    stage = "reading the job"
    try:
        job = client.job()
        spec = job["spec"]
        client.status(
            "running",
            message=f"worker started on {socket.gethostname()} (Python {platform.python_version()}), work dir {work}",
        )
        stage = "loading the training code"
        try:
            from waferdesk.ml.export import export_checkpoint
            from waferdesk.ml.train import train
        except ImportError as exc:
            raise WaferDeskError(
                f"this worker needs the 'ml' extra (torch, segmentation-models-pytorch): {exc}; "
                "install it with: pip install 'waferdesk[ml]'"
            ) from None
        stage = "fetching the training set"
        data_path, counts = training_set(client, spec, work, say)
        cfg = train_config(spec, data_path, client.job_id)
        if spec.get("init_model") is not None:
            stage = "fetching the model to fine-tune"
            cfg.init_from = str(client.init_model(work / "init"))
            say(f"fine-tuning model {spec['init_model']} (BatchNorm un-fused from its ONNX file)")
        stage = "training"
        say(f"training {spec['encoder']} U-Net: {cfg.steps} steps, an epoch every {cfg.eval_every} steps")
        run_dir = work / f"job-{client.job_id}"
        summary = train(cfg, run_dir, show_progress=False, log=say, on_epoch=lambda e: client.metrics(epoch_payload(e)))
        say(f"trained {summary['steps']} steps in {summary['train_time_s']} s; best mIoU {summary['best_val_miou']}")
        stage = "exporting the model"
        from waferdesk.core.modelcard import card_path_for

        out, card = export_checkpoint(run_dir, work / "model" / f"job-{client.job_id}.onnx")
        card.raw["name"] = spec.get("name") or f"waferdesk-unet-{spec['encoder']}"
        card.training["job"] = {"id": client.job_id, "spec": spec, "dataset": counts}
        card.save(card_path_for(out))
        say(f"exported {out.name} ({out.stat().st_size / 1e6:.1f} MB), version {card.version}")
        stage = "uploading the model"
        rep.flush()
        got = client.upload_model(out, card_path_for(out))
        client.status("succeeded", message=f"model {got['model_id']} uploaded: {got['version']}")
        say(f"done: model {got['model_id']} ({got['version']})")
        return EXIT_OK
    except JobEndedError as exc:
        rep.finished.set()
        print(f"stopping: {exc}", flush=True)
        return EXIT_JOB_ENDED
    except KeyboardInterrupt:
        if rep.finished.is_set():
            print("stopping: the job ended on the server", flush=True)
            return EXIT_JOB_ENDED
        _report_failure(client, rep, f"{stage} was interrupted (SIGINT)")
        return EXIT_FAILED
    except Exception as exc:
        traceback.print_exc(file=sys.stdout)  # for engineers: kept in the worker's raw output
        _report_failure(client, rep, f"{stage} failed: {describe(exc)}")
        return EXIT_FAILED
    finally:
        rep.close()


def _report_failure(client: WorkerClient, rep: Reporter, message: str) -> None:
    tail = [ln for ln in rep.tail() if ln.strip()][-ERROR_TAIL_LINES:]
    rep.line(message)
    try:
        rep.flush()
    except JobEndedError:
        return
    error = message + ("\nlast log lines:\n" + "\n".join(tail) if tail else "")
    try:
        client.status("failed", error=error)
    except JobEndedError:
        pass
    except Exception as exc:
        print(f"could not report the failure to the server: {exc}", flush=True)
