"""Command line of the worker: ``python -m waferdesk.worker`` / ``waferdesk train-worker``.

The token comes from ``WAFERDESK_JOB_TOKEN`` (what both backends set) or ``--token-file``;
never from the command line, where every user of the host could read it.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from waferdesk.core.errors import WaferDeskError

EXIT_USAGE = 2


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--server", default=os.environ.get("WAFERDESK_SERVER_URL"), help="the server's URL")
    p.add_argument("--job", type=int, default=os.environ.get("WAFERDESK_JOB_ID"), help="training job id")
    p.add_argument("--work-dir", type=Path, help="folder for the data, the run and the model (default ./job-<id>)")
    p.add_argument("--token-file", type=Path, help="read the job token from this file (else WAFERDESK_JOB_TOKEN)")
    p.add_argument(
        "--retry-seconds", type=float, default=300.0, help="keep retrying an unreachable server this long (300)"
    )


def run(args: argparse.Namespace) -> int:
    from .api import WorkerClient
    from .run import run_job

    if not args.server or args.job is None:
        raise WaferDeskError("--server and --job are required (or WAFERDESK_SERVER_URL and WAFERDESK_JOB_ID)")
    if args.token_file is not None:
        try:
            token = args.token_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise WaferDeskError(f"{args.token_file}: cannot read the job token ({exc})") from None
    else:
        token = os.environ.get("WAFERDESK_JOB_TOKEN", "").strip()
    if not token:
        raise WaferDeskError("no job token: set WAFERDESK_JOB_TOKEN or pass --token-file")
    client = WorkerClient(args.server, int(args.job), token, retry_seconds=args.retry_seconds)
    try:
        return run_job(client, args.work_dir or Path.cwd() / f"job-{args.job}")
    finally:
        client.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m waferdesk.worker", description=__doc__.split("\n\n")[0])
    add_arguments(p)
    args = p.parse_args(argv)
    try:
        return run(args)
    except WaferDeskError as exc:
        print(f"waferdesk worker: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
