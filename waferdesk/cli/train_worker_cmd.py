"""``waferdesk train-worker``: run one server training job (the worker both backends start)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    from ..worker.cli import add_arguments

    p = sub.add_parser(
        "train-worker",
        help="run one training job of a WaferDesk server (what its local and Kubernetes backends start)",
        description="Fetch a server training job's spec and data, train (needs the 'ml' extra), report "
        "metrics per epoch, upload the ONNX model and card. The job token comes from "
        "WAFERDESK_JOB_TOKEN or --token-file. Same as python -m waferdesk.worker.",
    )
    add_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..worker.cli import run as run_worker

    return run_worker(args)
