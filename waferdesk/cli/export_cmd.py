"""``waferdesk export``: a trained run (or checkpoint) to one ONNX file + its model card."""

from __future__ import annotations

import argparse
from pathlib import Path

from .views_option import add_views_option


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="export a trained model to ONNX with its model card",
        description="Write RUN_OR_CKPT (a run directory: its best.pt; or a checkpoint file) as one "
        "self-contained ONNX file (opset 17, dynamic batch and spatial axes, input 'input', "
        "outputs 'logits' and 'embedding') and its card <stem>.card.json beside it.",
    )
    p.add_argument("source", metavar="RUN_OR_CKPT", type=Path, help="run directory or checkpoint (.pt)")
    p.add_argument("--out", type=Path, required=True, help="output model file (.onnx)")
    p.add_argument(
        "--fp16",
        action="store_true",
        help="store the weights as float16 (half the size; ONNX Runtime computes in float32, I/O stay float32)",
    )
    p.add_argument(
        "--fp16-mode",
        choices=("weights", "full"),
        default="weights",
        help="with --fp16: 'weights' (default, see above) or 'full' (float16 arithmetic, for GPUs)",
    )
    add_views_option(p, "written to the card (inference.views) as what every consumer runs by default", default=1)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .main import require_extra

    require_extra("torch", "ml")
    require_extra("onnx", "ml")
    from ..core.modelcard import card_path_for
    from ..ml.export import export_checkpoint

    out, card = export_checkpoint(args.source, args.out, fp16=args.fp16, fp16_mode=args.fp16_mode, views=args.views)
    chk = card.onnx.get("check", {})
    print(
        f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB, {card.onnx['precision']}, opset {card.onnx['opset']}) "
        f"and {card_path_for(out).name}; vs torch on {chk.get('wafers')} wafers: max |logit diff| "
        f"{chk.get('max_abs_logit_diff', float('nan')):.2e}, argmax agreement {chk.get('argmax_agreement', 0):.5f}"
    )
    return 0
