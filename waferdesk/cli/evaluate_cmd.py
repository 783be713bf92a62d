"""``waferdesk evaluate``: the model's numbers, computed through the ONNX model as users run it.

Synthetic (per-die IoU over failing dies against ground truth) and, when real WM-811K maps
are given or found, wafer-level accuracy / macro-F1 against their labels; both every time.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..core.errors import WaferDeskError
from .views_option import add_views_option

REAL_ENV = "WAFERDESK_REAL_DATA"


def default_real_path() -> Path | None:
    """``$WAFERDESK_REAL_DATA``, else the shared WM-811K split beside a source checkout."""
    env = os.environ.get(REAL_ENV)
    if env:
        return Path(env)
    beside = Path(__file__).resolve().parents[3] / "shared" / "data" / "wm811k-val.npz"
    return beside if beside.is_file() else None


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="measure a model: per-class IoU on labelled wafers, accuracy / macro-F1 on real WM-811K maps",
        description="Runs the ONNX model through WaferDesk's inference engine (exactly as users run it) "
        "over a labelled wafer file (e.g. `waferdesk synth --seed 303 --count 2000 --out test.wdm`) and, "
        f"when given or found (--real, ${REAL_ENV}), the real WM-811K maps.",
    )
    p.add_argument("--model", type=Path, help="ONNX model with its .card.json beside it (default: the shipped one)")
    p.add_argument("--data", type=Path, required=True, help="labelled wafer file (.wdm with ground-truth masks)")
    p.add_argument("--real", help="WM-811K npz (default: $WAFERDESK_REAL_DATA or ../shared/data); 'none' to skip")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    p.add_argument("--out", type=Path, help="also write metrics.json and confusion matrices (JSON + PNG) here")
    p.add_argument("--batch-size", type=int, default=32, help="wafers per inference batch (default 32)")
    add_views_option(p, "default: what the model card says, as the app and the server run it")
    p.add_argument("--limit", type=int, default=0, help="evaluate only the first N wafers of each set (0: all)")
    p.add_argument(
        "--record",
        nargs="?",
        const="test",
        metavar="KEY",
        help="store the results in the model's card as metrics.KEY (default KEY: test); the shipped card "
        "holds 'test' (the full sets) and 'check' (a small set a test re-evaluates)",
    )
    p.set_defaults(func=run)


def _real_path(arg: str | None) -> Path | None:
    if arg is not None:
        if arg.lower() == "none":
            return None
        p = Path(arg)
        if not p.is_file():
            raise WaferDeskError(f"{p}: real-data file not found")
        return p
    return default_real_path()


def run(args: argparse.Namespace) -> int:
    from ..core.modelcard import card_path_for, default_model_path, load_card
    from ..ml.data import load_wm811k, read_labelled
    from ..ml.evaluate import evaluate_sets, flat_summary, onnx_predict_fn, save_report
    from .progress import bar

    if args.batch_size < 1:
        raise WaferDeskError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.limit < 0:  # read as "all" before: a typo started the full (many-minute) evaluation
        raise WaferDeskError(f"--limit must be 0 (all) or a positive count, got {args.limit}")
    if args.record is not None and not args.record.isidentifier():
        raise WaferDeskError(f"--record: {args.record!r} is not a valid key (letters, digits, _)")
    model = args.model or default_model_path()
    if not Path(model).is_file():
        from ..core.errors import ModelError

        raise ModelError(f"{model}: model file not found" + ("" if args.model else " (the shipped default model)"))
    if args.out is not None:  # before the evaluation (minutes on the full sets), not after it
        try:
            args.out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise WaferDeskError(f"--out {args.out}: cannot create the output folder ({exc.strerror or exc})") from None
    real_path = _real_path(args.real)
    records = read_labelled(args.data)
    real = load_wm811k(real_path) if real_path else []
    if args.limit > 0:
        records, real = records[: args.limit], real[: args.limit]
    t0 = time.perf_counter()
    with bar(len(records) + len(real), "evaluate") as pb:
        predict_fn, seg = onnx_predict_fn(model, args.batch_size, pb, views=args.views)
        report = evaluate_sets(predict_fn, records, real)
    elapsed = time.perf_counter() - t0
    result: dict[str, Any] = {
        "model": str(model),
        "model_version": seg.card.version,
        "model_sha256": seg.card.sha256,
        "provider": getattr(seg, "provider", None),
        "views": seg.views,  # dihedral views averaged per wafer (test-time augmentation)
        "data": str(args.data),
        "real_data": str(real_path) if real_path else None,
        "verdict_policy": asdict(seg.policy),  # the thresholds behind every verdict number below
        **flat_summary(report),
        **report,
        "seconds": round(elapsed, 1),
    }
    if args.out:
        save_report(result, args.out)
    if args.record:
        card_file = card_path_for(model)
        card = load_card(card_file)
        card.metrics[args.record] = {
            "command": "waferdesk evaluate " + " ".join(sys.argv[2:]) if sys.argv[1:2] == ["evaluate"] else None,
            **{k: v for k, v in result.items() if k not in ("model",)},
        }
        card.raw["metrics"] = card.metrics
        card.save(card_file)
    if args.json:
        print(json.dumps(result))
    else:
        print(render_text(result))
    return 0


def render_text(r: dict[str, Any]) -> str:
    views = r.get("views", 1)
    averaged = f", {views} views averaged" if views > 1 else ""
    lines = [f"model {r['model_version']} ({r['model']}){averaged}, {r['seconds']} s"]
    syn = r.get("synthetic")
    if syn:
        lines.append(
            f"synthetic: {syn['n_wafers']} wafers, {syn['n_fail_dies']} failing dies; mIoU {syn['miou']}, "
            f"verdict accuracy {syn['verdict_accuracy']} (primary {syn['primary_verdict_accuracy']})"
        )
        lines += [f"  {name:<12} IoU {v}" for name, v in syn["class_iou"].items()]
    real = r.get("real")
    if real:
        lines.append(f"real WM-811K: {real['n_wafers']} maps; accuracy {real['accuracy']}, macro-F1 {real['macro_f1']}")
        lines += [f"  {name:<12} F1 {v}" for name, v in real["class_f1"].items()]
    else:
        lines.append(f"real WM-811K: not evaluated (give --real PATH or set {REAL_ENV})")
    return "\n".join(lines)
