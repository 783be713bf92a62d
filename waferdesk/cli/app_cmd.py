"""``waferdesk app [FILES...]``: start the desktop app (needs the ``app`` extra).

``--self-test`` starts the same window (offscreen when there is no display), opens a sample
wafer, checks that it is drawn, runs the model on it when one is there, prints one line of
JSON and exits on its own: 0 when everything worked, 1 otherwise. Installers and the
bundle's smoke test use it to prove a fab PC can run WaferDesk without anyone watching.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .main import require_extra


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("app", help="start the desktop app (opens the sample wafers when no files are given)")
    p.add_argument("files", nargs="*", type=Path, help="wafer files or folders to open")
    p.add_argument("--model", type=Path, default=None, help="ONNX model to use instead of the shipped one")
    p.add_argument(
        "--self-test",
        action="store_true",
        help="open a sample wafer (or FILES), check it is drawn, run the model when there is one, "
        "print a JSON line and exit (0 = passed); offscreen when there is no display",
    )
    p.add_argument("--no-model", action="store_true", help="with --self-test: do not load or run any model")
    p.add_argument(
        "--timeout", type=float, default=120.0, metavar="S", help="with --self-test: give up after S seconds"
    )
    p.set_defaults(func=run)


def app_available() -> bool:
    """True when the app extra is installed and there is somewhere to show a window."""
    try:
        import pyqtgraph  # noqa: F401
        import PySide6  # noqa: F401
    except ImportError:
        return False
    if sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY") or os.environ.get("QT_QPA_PLATFORM")
    ):
        return False
    return True


def run(args: argparse.Namespace) -> int:
    require_extra("PySide6", "app")
    require_extra("pyqtgraph", "app")
    if args.self_test:
        from ..app.selftest import run_self_test

        return run_self_test(
            [str(f) for f in args.files],
            str(args.model) if args.model else None,
            use_model=not args.no_model,
            timeout_s=args.timeout,
        )
    from ..app.main import run_app

    return run_app([str(f) for f in args.files], str(args.model) if args.model else None)
