"""An exponential moving average (EMA) of a network's weights, for ``waferdesk train --ema``.

On two CPU cores a run gets a few thousand steps of small, noisy batches (2-16 wafers), so the
weights at any one step carry that step's noise; their running average over the last
~``1 / (1 - decay)`` steps is usually the better network. With ``--ema`` the average is what
a run evaluates, keeps as ``best.pt`` and therefore exports; the raw weights go on training.

Every floating-point tensor of the state dict is averaged (BatchNorm's running statistics
too, so they match the averaged weights); integer buffers (BatchNorm's batch counter) are
copied. The average starts as a copy of the network, so a fine-tuning run's average starts
at the model it fine-tunes.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn


class WeightAverage:
    """``average = decay * average + (1 - decay) * weights`` after every optimiser step."""

    def __init__(self, model: nn.Module, decay: float):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must be between 0 and 1 (exclusive), got {decay}")
        self.decay = decay
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        # state_dict() tensors share storage with the module's parameters and buffers
        for avg, new in zip(self.model.state_dict().values(), model.state_dict().values(), strict=True):
            if avg.dtype.is_floating_point:
                avg.lerp_(new.detach().to(avg.dtype), 1.0 - self.decay)
            else:
                avg.copy_(new)

    def state_dict(self) -> dict[str, Any]:
        return self.model.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state)
