"""What every part shows about a labelled wafer: per-class die counts and the verdict.

The verdict is derived from the mask so that it means the same thing everywhere: the
systematic classes owning at least ``min_share`` of the failing dies (and at least
``min_dies`` of them), largest first, several allowed (mixed patterns); ``random`` only when
the scattered fails are dense on their own (``random_min_density`` of all dies on the wafer,
because a wafer with a few scattered fails is normal, not a "random" wafer); ``none``
otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .taxonomy import Taxonomy, default_taxonomy
from .wafer import LabelMask, WaferMap

NONE = "none"


@dataclass(frozen=True)
class VerdictPolicy:
    min_share: float
    min_dies: int
    random_min_density: float

    @classmethod
    def default(cls, taxonomy: Taxonomy | None = None) -> VerdictPolicy:
        v = (taxonomy or default_taxonomy()).verdict
        return cls(v.min_share, v.min_dies, v.random_min_density)


@dataclass(frozen=True)
class Verdict:
    """Wafer-level verdict: class names, the dominant first; empty means ``none``."""

    classes: tuple[str, ...]

    def __str__(self) -> str:
        return "+".join(self.classes) if self.classes else NONE

    @property
    def primary(self) -> str:
        return self.classes[0] if self.classes else NONE

    @classmethod
    def parse(cls, text: str) -> Verdict:
        text = text.strip()
        return cls(()) if text in ("", NONE) else cls(tuple(text.split("+")))


def verdict_from_counts(
    counts: np.ndarray, n_dies: int, policy: VerdictPolicy | None = None, taxonomy: Taxonomy | None = None
) -> Verdict:
    """The verdict from per-class failing-die counts and the number of dies on the wafer."""
    tax = taxonomy or default_taxonomy()
    pol = policy or VerdictPolicy.default(tax)
    counts = np.asarray(counts, dtype=np.int64)
    total = int(counts.sum())
    if total == 0:
        return Verdict(())
    chosen: list[tuple[int, str]] = []
    for c in tax.classes:
        n = int(counts[c.index])
        if c.systematic:
            if n >= pol.min_dies and n / total >= pol.min_share:
                chosen.append((n, c.name))
        elif n_dies and n / n_dies >= pol.random_min_density:
            chosen.append((n, c.name))
    chosen.sort(key=lambda t: -t[0])
    return Verdict(tuple(name for _, name in chosen))


@dataclass(frozen=True)
class WaferSummary:
    """Counts and verdict of one wafer under one mask."""

    counts: dict[str, int]
    n_fail: int
    n_dies: int
    verdict: Verdict

    def pareto(self) -> list[tuple[str, int]]:
        """Classes by failing-die count, largest first, zero counts dropped (yield-loss Pareto)."""
        return sorted(((k, v) for k, v in self.counts.items() if v), key=lambda kv: -kv[1])

    def yield_loss(self) -> dict[str, float]:
        """Share of the wafer's dies lost to each class."""
        return {k: (v / self.n_dies if self.n_dies else 0.0) for k, v in self.counts.items()}


def summarize(
    wafer: WaferMap, mask: LabelMask, policy: VerdictPolicy | None = None, taxonomy: Taxonomy | None = None
) -> WaferSummary:
    tax = taxonomy or default_taxonomy()
    counts = mask.counts(len(tax))
    return WaferSummary(
        counts={name: int(counts[i]) for i, name in enumerate(tax.names)},
        n_fail=wafer.n_fail,
        n_dies=wafer.n_dies,
        verdict=verdict_from_counts(counts, wafer.n_dies, policy, tax),
    )
