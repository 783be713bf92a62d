"""``waferdesk bench-app``: time the desktop's hot paths and print medians against targets."""

from __future__ import annotations

import argparse
import os
import sys

from .main import require_extra


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench-app", help="benchmark the desktop app (open+draw, brush repaint, next wafer)")
    p.add_argument("--runs", type=int, default=30, help="timed runs per measurement (default 30)")
    p.add_argument("--size", type=int, default=300, help="dies across the benchmark wafer (default 300)")
    p.add_argument(
        "--queue-server",
        metavar="URL",
        help="also time 'next wafer in the queue' (prefetch vs none) against this server; the annotator's "
        "password comes from WAFERDESK_PASSWORD (scripts/serve_queue.py starts a local server for it)",
    )
    p.add_argument("--queue-user", default="ann", help="annotator to claim as (default ann)")
    p.add_argument("--queue-runs", type=int, default=10, help="timed submits per queue measurement (default 10)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    require_extra("PySide6", "app")
    require_extra("pyqtgraph", "app")
    from ..app.bench import run_benchmark

    queue = None
    if args.queue_server:
        password = os.environ.get("WAFERDESK_PASSWORD")
        if not password:
            print("waferdesk bench-app: --queue-server needs the password in WAFERDESK_PASSWORD", file=sys.stderr)
            return 2
        queue = (args.queue_server, args.queue_user, password)
    print(run_benchmark(runs=args.runs, size=args.size, queue_server=queue, queue_runs=args.queue_runs))
    return 0
