"""The training loss: class-weighted cross-entropy + soft Dice, over failing dies only.

Pass dies and no-die cells carry the ignore label (255) and contribute nothing, like in the
metric. Cross-entropy is weighted against the class frequencies of the training data (thin
scratches and small particles own ~1 % of the failing dies, broad etching and scattered
random fails ~75 %), and Dice, computed per class over the whole batch, pulls the small
classes' IoU up directly.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.nn import functional as F  # noqa: N812

from waferdesk.core.synth import SynthConfig, generate_record
from waferdesk.core.taxonomy import IGNORE


def class_frequencies(seed: int, cfg: SynthConfig, n: int = 600) -> np.ndarray:
    """Share of failing dies per class in ``n`` wafers of the training distribution."""
    counts = np.zeros(0)
    for i in range(n):
        c = generate_record(seed, i, cfg).mask.counts()
        counts = c if counts.size == 0 else counts + c
    return counts / max(1, counts.sum())


def class_weights_from(freq: Sequence[float], power: float = 0.5, lo: float = 0.25, hi: float = 5.0) -> list[float]:
    """``(median / freq) ** power``, clipped: rare classes count more, without exploding."""
    f = np.maximum(np.asarray(freq, dtype=float), 1e-5)
    w = np.clip((np.median(f) / f) ** power, lo, hi)
    return [round(float(v), 4) for v in w]


class SegLoss(torch.nn.Module):
    def __init__(self, class_weights: Sequence[float] | None, dice_weight: float = 0.5) -> None:
        super().__init__()
        w = torch.tensor(list(class_weights), dtype=torch.float32) if class_weights is not None else None
        self.register_buffer("weight", w, persistent=False)
        self.dice_weight = dice_weight

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        logits = logits.float()
        target = target.long()
        keep = target != IGNORE
        if not keep.any():
            zero = logits.sum() * 0.0
            return zero, {"ce": 0.0, "dice": 0.0}
        ce = F.cross_entropy(logits, target, weight=self.weight, ignore_index=IGNORE)
        if self.dice_weight <= 0:
            return ce, {"ce": float(ce.detach()), "dice": 0.0}
        k = logits.shape[1]
        probs = logits.softmax(dim=1).permute(0, 2, 3, 1)[keep]  # (n, K) on labelled pixels
        onehot = F.one_hot(target[keep], k).float()
        inter = (probs * onehot).sum(0)
        denom = probs.sum(0) + onehot.sum(0)
        present = onehot.sum(0) > 0
        dice = 1 - (2 * inter + 1.0) / (denom + 1.0)
        dice_loss = dice[present].mean()
        loss = ce + self.dice_weight * dice_loss
        return loss, {"ce": float(ce.detach()), "dice": float(dice_loss.detach())}
