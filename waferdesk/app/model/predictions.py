"""What the app keeps of a model run: the mask, counts and verdict always; class probabilities
and per-die entropy only for recently viewed wafers (a 300x300 map's probabilities take
~3 MB, a folder of them would not fit), re-computed on demand when evicted.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...core.annotation import restrict_to_fails
from ...core.results import WaferSummary, summarize
from ...core.wafer import LabelMask, WaferMap
from .layers import die_entropy


@dataclass(eq=False)
class ModelResult:
    labels: np.ndarray  # class per failing die, IGNORE elsewhere
    summary: WaferSummary
    uncertainty: dict[str, float]
    model_version: str
    provider: str
    latency_ms: float
    details: DieDetails | None = None  # evictable, see ProbabilityCache
    views: int = 1  # dihedral views the model averaged for it

    @classmethod
    def from_prediction(cls, pred: Any, wafer: WaferMap) -> ModelResult:
        labels = restrict_to_fails(pred.mask.labels, wafer.dies)
        probs = np.asarray(pred.probs, dtype=np.float32)
        return cls(
            labels=labels,
            summary=summarize(wafer, LabelMask(labels)),
            uncertainty={k: float(v) for k, v in (pred.uncertainty or {}).items()},
            model_version=str(pred.model_version),
            provider=str(pred.provider),
            latency_ms=float(pred.latency_ms),
            details=DieDetails(probs, die_entropy(probs)),
            views=int(getattr(pred, "views", 1) or 1),
        )


def from_mask(labels: np.ndarray, wafer: WaferMap, model_version: str, provider: str = "server") -> ModelResult:
    """A result known only by its mask (the server's stored prediction of a queue wafer)."""
    labels = restrict_to_fails(np.asarray(labels, dtype=np.uint8), wafer.dies)
    return ModelResult(labels, summarize(wafer, LabelMask(labels)), {}, model_version or "?", provider, 0.0)


@dataclass(eq=False)
class DieDetails:
    probs: np.ndarray  # (K, H, W) float32
    entropy: np.ndarray  # (H, W) float32 in 0..1
    nbytes: int = field(init=False)

    def __post_init__(self) -> None:
        self.nbytes = int(self.probs.nbytes + self.entropy.nbytes)


class ProbabilityCache:
    """Keeps per-die details of the most recently used results within a byte budget."""

    def __init__(self, budget_bytes: int = 256 * 1024**2) -> None:
        self.budget = budget_bytes
        self._order: OrderedDict[int, ModelResult] = OrderedDict()
        self._bytes = 0

    def touch(self, result: ModelResult) -> None:
        """Mark ``result``'s details as used; evict the least recent others over budget."""
        if result.details is None:
            return
        rid = id(result)
        if rid in self._order:
            self._order.move_to_end(rid)
        else:
            self._order[rid] = result
            self._bytes += result.details.nbytes
        while self._bytes > self.budget and len(self._order) > 1:
            _, old = self._order.popitem(last=False)
            if old.details is not None:
                self._bytes -= old.details.nbytes
                old.details = None

    def forget(self, result: ModelResult) -> None:
        if self._order.pop(id(result), None) is not None and result.details is not None:
            self._bytes -= result.details.nbytes

    @property
    def used_bytes(self) -> int:
        return self._bytes
