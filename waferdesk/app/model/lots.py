"""The lot view's numbers: fail rate per die position across the wafers of one lot.

Wafers of a lot normally share one die grid; wafers of another size (a different product
in the same lot id) cannot be stacked die by die and are counted as skipped. The lot view
stacks the size of the wafer on screen, so the stack always holds it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ...core.wafer import FAIL, NO_DIE, WaferMap


@dataclass(frozen=True)
class LotStack:
    rate: np.ndarray  # (H, W) float32 fail rate, NaN where no wafer has a die
    present: np.ndarray  # (H, W) int: wafers with a die at this position
    n_wafers: int
    skipped: int
    mean_yield: float

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.rate.shape[0]), int(self.rate.shape[1]))


def stack_lot(wafers: Sequence[WaferMap], shape: tuple[int, int] | None = None) -> LotStack | None:
    """Stack the wafers of grid size ``shape`` (None, or a size none has: the most common one);
    None when there are no wafers."""
    if not wafers:
        return None
    if shape is None or not any(w.shape == shape for w in wafers):
        shape, _ = Counter(w.shape for w in wafers).most_common(1)[0]
    same = [w for w in wafers if w.shape == shape]
    dies = np.stack([w.dies for w in same])
    present = (dies != NO_DIE).sum(axis=0)
    fails = (dies == FAIL).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(present > 0, fails / np.maximum(present, 1), np.nan).astype(np.float32)
    return LotStack(rate, present, len(same), len(wafers) - len(same), float(np.mean([w.yield_ for w in same])))
