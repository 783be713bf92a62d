"""Entry point of the ``waferdesk`` command.

Sub-commands live in small modules that each export ``register(subparsers)``; heavy
dependencies (torch, Qt) are imported inside the command that needs them, so ``waferdesk
synth`` starts fast and works without the optional extras. Errors WaferDesk raises on
purpose are printed as one line (no stack trace) with exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .. import __version__
from ..core.errors import WaferDeskError

# module name under waferdesk.cli -> registered by its register(subparsers)
COMMAND_MODULES = (
    "synth_cmd",
    "predict_cmd",
    "realism_cmd",
    "coco_cmd",
    "app_cmd",
    "bench_app_cmd",
    "model_cmd",
    "bench_cmd",
    "train_cmd",
    "export_cmd",
    "evaluate_cmd",
    "train_worker_cmd",
)


class MissingExtraError(WaferDeskError):
    """A command needs an optional extra that is not installed."""


def require_extra(module: str, extra: str) -> None:
    """Import ``module`` or raise a clear message naming the extra to install."""
    try:
        importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(
            f"this command needs the '{extra}' extra ({module} is not importable: {exc}); "
            f"install it with: pip install 'waferdesk[{extra}]'"
        ) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="waferdesk",
        description="Find, attribute and label defect patterns on wafer maps.",
    )
    parser.add_argument("--version", action="store_true", help="print the version and runtime, then exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"{__package__}.{name}").register(sub)
    return parser


def version_text() -> str:
    return f"waferdesk {__version__}"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        print(version_text())
        return 0
    if not getattr(args, "func", None):
        from .app_cmd import app_available

        if argv is None and not sys.argv[1:] and app_available():
            args = parser.parse_args(["app"])  # plain `waferdesk` starts the desktop app
        else:
            parser.print_help()
            return 0
    try:
        return int(args.func(args) or 0)
    except WaferDeskError as exc:
        print(f"waferdesk {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"waferdesk {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
