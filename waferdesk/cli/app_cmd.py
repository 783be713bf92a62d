"""``waferdesk app [FILES...]``: start the desktop app (needs the ``app`` extra)."""

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
    from ..app.main import run_app

    return run_app([str(f) for f in args.files], str(args.model) if args.model else None)
