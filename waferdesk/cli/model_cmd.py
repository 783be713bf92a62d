"""``waferdesk model ...``: operations on model files (sub-commands in their own modules).

Each module in :data:`MODEL_COMMANDS` exports ``register(subparsers)`` like the top-level
commands, so more model operations can be added without touching this file's logic.
"""

from __future__ import annotations

import argparse
import importlib

MODEL_COMMANDS = ("model_quantize_cmd",)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("model", help="model files: quantize ...")
    model_sub = p.add_subparsers(dest="model_command", metavar="MODEL_COMMAND")
    for name in MODEL_COMMANDS:
        importlib.import_module(f"{__package__}.{name}").register(model_sub)
    p.set_defaults(func=lambda args: (p.print_help(), 0)[1])
