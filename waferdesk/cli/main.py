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
    "al_sim_cmd",
    "train_worker_cmd",
)
SELF_TEST = "--self-test"


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
    parser.add_argument(
        "--version", action="store_true", help="print the version, variant and execution provider, then exit"
    )
    parser.add_argument(
        SELF_TEST, dest="self_test_shortcut", action="store_true", help="same as `app --self-test` (see `app --help`)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            importlib.import_module(f"{__package__}.{name}").register(sub)
        except ModuleNotFoundError as exc:  # a part this installation leaves out (the desktop bundle: training)
            _register_unavailable(sub, name.removesuffix("_cmd").replace("_", "-"), exc)
    return parser


def _register_unavailable(sub: argparse._SubParsersAction, command: str, exc: ModuleNotFoundError) -> None:
    """``command`` stays listed and says why it cannot run, instead of breaking every command."""
    help_text = f"(not in this installation: {exc.name} is missing)"
    # no option prefix: every argument given (--run-dir ...) is taken as a word, none is refused
    p = sub.add_parser(command, help=help_text, description=help_text, prefix_chars="\x01", add_help=False)
    p.add_argument("rest", nargs="*", help=argparse.SUPPRESS)

    def run(_args: argparse.Namespace) -> int:
        raise MissingExtraError(
            f"not part of this installation ({exc.name} is missing); it needs a Python install of "
            "waferdesk with its extras (pip install 'waferdesk[ml]' for training, evaluation and export)"
        )

    p.set_defaults(func=run)


def version_text(probe: bool = True) -> str:
    """Version, variant (cpu/gpu bundle or install) and the execution provider that really starts."""
    from ..core.buildinfo import build_info, probe_provider

    info = build_info()
    where = "bundle" if info.frozen else "Python install"
    lines = [f"waferdesk {__version__} ({info.variant} variant, {where}; {info.onnxruntime})"]
    if probe:
        try:
            provider, note = probe_provider()
            lines.append(f"execution provider: {provider} ({note})")
        except ImportError as exc:
            lines.append(f"execution provider: none (onnxruntime not importable: {exc})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args_in = sys.argv[1:] if argv is None else list(argv)
    if args_in[:1] == [SELF_TEST]:  # `waferdesk --self-test ...` is short for `waferdesk app --self-test ...`
        argv = ["app", *args_in]
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
    except OSError as exc:  # a file the system refuses (a folder where a file goes, read-only, disk full)
        where = f"{exc.filename}: " if exc.filename is not None else ""
        print(f"waferdesk {args.command}: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"waferdesk {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
