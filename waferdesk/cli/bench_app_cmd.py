"""``waferdesk bench-app``: time the desktop's hot paths and print medians against targets."""

from __future__ import annotations

import argparse

from .main import require_extra


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench-app", help="benchmark the desktop app (open+draw, brush repaint, next wafer)")
    p.add_argument("--runs", type=int, default=30, help="timed runs per measurement (default 30)")
    p.add_argument("--size", type=int, default=300, help="dies across the benchmark wafer (default 300)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    require_extra("PySide6", "app")
    require_extra("pyqtgraph", "app")
    from ..app.bench import run_benchmark

    print(run_benchmark(runs=args.runs, size=args.size))
    return 0
