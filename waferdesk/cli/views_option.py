"""The ``--views`` option shared by ``predict``, ``evaluate`` and ``export``: one spelling,
one set of choices, one explanation of test-time augmentation."""

from __future__ import annotations

import argparse

from ..core.inference.views import VIEW_SETS


def add_views_option(p: argparse.ArgumentParser, what: str, default: int | None = None) -> None:
    """``--views N`` (1, 2, 4 or 8); ``what`` finishes the help text (the default, the cost...)."""
    p.add_argument(
        "--views",
        type=int,
        choices=tuple(VIEW_SETS),
        default=default,
        help="test-time augmentation: average the model over N rotated / mirrored views of each wafer; " + what,
    )
