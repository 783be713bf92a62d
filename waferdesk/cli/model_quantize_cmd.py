"""``waferdesk model quantize``: a statically quantized int8 copy, kept only if it agrees.

Prints the argmax agreement with the original on the failing dies of a check set of
synthetic wafers. When the plain copy misses 99.9 %, up to ``--search`` blocks are kept in
float, chosen by measurement on other wafers, and that copy faces the same gate; below it the
file is deleted and the exit status is 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "quantize",
        help="write an int8 copy of a model for fast CPU inference (kept only if >= 99.9%% argmax agreement)",
    )
    p.add_argument("--model", type=Path, default=None, metavar="M.onnx", help="model (default: the shipped model)")
    p.add_argument("--out", type=Path, required=True, metavar="OUT.onnx", help="int8 model to write (+ its card)")
    p.add_argument("--calib", type=int, default=64, metavar="N", help="synthetic calibration wafers (default 64)")
    p.add_argument("--check", type=int, default=200, metavar="N", help="synthetic check wafers (default 200)")
    p.add_argument(
        "--search",
        type=int,
        default=None,
        metavar="N",
        help="when the plain copy misses the gate, keep up to N blocks in float, chosen by measured agreement "
        "(default 3; 0: refuse instead)",
    )
    p.add_argument("--threads", type=int, default=None, metavar="N", help="threads for the check runs")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..core.errors import ModelError, WaferDeskError
    from ..core.inference.quantize import SEARCH_GROUPS, QuantizationRefusedError, quantize_model
    from ..core.modelcard import default_model_path

    if args.threads is not None and args.threads < 1:  # 0 and below silently meant "physical cores"
        raise WaferDeskError(f"--threads must be at least 1, got {args.threads}")
    model = args.model or default_model_path()
    if args.model is None and not model.is_file():
        raise ModelError(f"{model}: the default model is not installed; pass --model M.onnx")

    def say(msg: str) -> None:
        print(f"quantize: {msg}", file=sys.stderr, flush=True)

    try:
        search = SEARCH_GROUPS if args.search is None else args.search
        rep = quantize_model(
            model,
            args.out,
            calib=args.calib,
            check=args.check,
            search=search,
            threads=args.threads,
            on_progress=say,
        )
    except QuantizationRefusedError as exc:
        if exc.report is not None:
            print(f"argmax agreement {exc.report.agreement:.4%} on {exc.report.failing_dies} failing dies: REFUSED")
        raise
    if rep.plain_agreement is not None:
        print(f"plain int8 copy: {rep.plain_agreement:.4%}; kept in float: {', '.join(rep.float_groups)}")
    print(
        f"argmax agreement {rep.agreement:.4%} on {rep.failing_dies} failing dies of {rep.check_wafers} "
        f"synthetic wafers (>= {rep.min_agreement:.1%}): kept {rep.path} "
        f"({rep.size_bytes / 1e6:.1f} MB, parent {rep.parent_size_bytes / 1e6:.1f} MB) in {rep.seconds:.1f} s"
    )
    return 0
