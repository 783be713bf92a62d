"""``waferdesk bench``: ONNX Runtime fp32 vs int8 vs PyTorch eager, side by side, as a table + JSON.

The PyTorch baseline needs the ``ml`` extra: the eager module the ONNX file was exported from
(``waferdesk.ml.model.build_from_card``) with ``--weights`` (or ``<stem>.pt`` beside the model),
else with the ONNX file's own weights (:func:`waferdesk.ml.recover.recover`), so a shipped
model needs no checkpoint. Without the extra the table says "pytorch eager: not measured (why)".
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

WEIGHT_SUFFIXES = (".pt", ".pth", ".ckpt")


def register(sub: argparse._SubParsersAction) -> None:
    from ..core.inference.providers import PROVIDER_CHOICES

    p = sub.add_parser("bench", help="benchmark the model: ONNX Runtime fp32 vs int8 vs PyTorch eager")
    p.add_argument("--model", type=Path, default=None, metavar="M", help="ONNX model (default: the shipped model)")
    p.add_argument("--json", type=Path, default=None, metavar="OUT.json", help="also write the results as JSON")
    p.add_argument("--sizes", default="32,64,256", help="map sizes in dies per side (default 32,64,256)")
    p.add_argument("--runs", type=int, default=20, metavar="N", help="timed runs at batch 1 (default 20)")
    p.add_argument("--int8", type=Path, default=None, metavar="Q.onnx", help="int8 model (default: quantize one now)")
    p.add_argument("--no-int8", action="store_true", help="skip the int8 variant")
    p.add_argument(
        "--weights", type=Path, default=None, help="PyTorch weights for the eager baseline (default: the ONNX file)"
    )
    p.add_argument("--provider", choices=PROVIDER_CHOICES, default="auto", help="execution provider (default auto)")
    p.add_argument("--threads", type=int, default=None, metavar="N", help="threads (default: physical cores)")
    p.set_defaults(func=run)


def torch_factory(weights: Path | None):
    """A factory for the eager PyTorch baseline, or the reason it cannot be built."""

    def make(card: Any, model_path: Path, threads: int):
        try:
            import torch
        except ImportError as exc:
            return None, f"torch is not installed: {exc}"
        try:
            from ..ml.model import build_from_card  # provided by the ml package
        except ImportError as exc:
            return None, f"waferdesk.ml.model.build_from_card is not available: {exc}"
        candidates = [weights] if weights else [model_path.with_suffix(s) for s in WEIGHT_SUFFIXES]
        found = next((c for c in candidates if c and c.is_file()), None)
        if found is not None:
            try:
                module = build_from_card(card, found).eval()
            except Exception as exc:  # not a torch file, weights of another network, a card of another kind
                return None, f"cannot use {found} as PyTorch weights ({type(exc).__name__}: {exc})"
        elif weights is not None:
            return None, f"no PyTorch weights at {weights}"
        else:  # the network rebuilt from the ONNX file's own weights (BatchNorm un-fused)
            try:
                from ..core.errors import WaferDeskError
                from ..ml.recover import recover

                module = recover(model_path, card).eval()
            except (ImportError, WaferDeskError) as exc:
                tried = ", ".join(map(str, candidates))
                return None, f"no PyTorch weights at {tried} (pass --weights), nor from the ONNX file: {exc}"
        torch.set_num_threads(threads)

        def run(x):
            with torch.inference_mode():
                return module(torch.from_numpy(x))

        return run, ""

    return make


def run(args: argparse.Namespace) -> int:
    from ..core.errors import ModelError, WaferDeskError
    from ..core.inference.bench import format_table, run_bench
    from ..core.modelcard import default_model_path

    try:
        sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    except ValueError:
        raise WaferDeskError(f"--sizes {args.sizes!r}: expected comma-separated integers like 32,64,256") from None
    if not sizes or min(sizes) < 4 or max(sizes) > 1024:
        raise WaferDeskError(f"--sizes {args.sizes!r}: each size must lie in 4..1024 dies")
    if args.runs < 1:
        raise WaferDeskError(f"--runs must be at least 1, got {args.runs}")
    if args.threads is not None and args.threads < 1:  # 0 and below silently meant "physical cores"
        raise WaferDeskError(f"--threads must be at least 1, got {args.threads}")
    model = args.model or default_model_path()
    if not model.is_file():
        raise ModelError(f"{model}: model not found; pass --model M.onnx")
    report = run_bench(
        model,
        sizes=sizes,
        runs=args.runs,
        int8=False if args.no_int8 else (args.int8 or True),
        torch_factory=torch_factory(args.weights),
        providers=args.provider,
        threads=args.threads,
        on_progress=lambda m: print(f"bench: {m}", file=sys.stderr, flush=True),
    )
    print(format_table(report))
    if args.json:
        from ..core.atomic import atomic_open

        args.json.parent.mkdir(parents=True, exist_ok=True)
        with atomic_open(args.json) as fh:  # an interrupted write leaves the previous file whole
            json.dump(report, fh, indent=2)
            fh.write("\n")
        print(f"wrote {args.json}")
    return 0
