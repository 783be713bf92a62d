"""Synthetic wafer maps with per-die ground truth for all 8 classes (see :mod:`.generator`)."""

from .generator import SYSTEMATIC, SynthConfig, compose, generate, generate_parallel, generate_record
from .patterns import GENERATORS, PRIORITY

__all__ = [
    "GENERATORS",
    "PRIORITY",
    "SYSTEMATIC",
    "SynthConfig",
    "compose",
    "generate",
    "generate_parallel",
    "generate_record",
]
