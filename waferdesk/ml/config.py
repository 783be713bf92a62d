"""Training configuration: every knob of a run, saved as ``config.json`` in its run directory."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from waferdesk.core.errors import WaferDeskError
from waferdesk.core.synth import SYSTEMATIC

TRAIN_SEED = 101
"""Generator seed of the training stream (wafers 0, 1, 2, ... of this data set)."""
VAL_SEED = 202
"""Validation wafers while training: a data set never trained on."""
TEST_SEED = 303
"""The held-out test set the README's numbers come from (``waferdesk synth --seed 303``)."""


@dataclass
class TrainConfig:
    encoder: str = "resnet50"
    steps: int = 4000
    batch_size: int = 16  # wafers per batch on a 64x64 canvas; fewer on larger canvases
    min_batch: int = 2
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup: float = 0.05  # share of the steps spent warming up (OneCycle pct_start)
    schedule: str = "cosine"  # linear warmup + cosine decay; or "onecycle"
    dice_weight: float = 0.5
    class_weights: list[float] | None = None  # None: from the training data's class frequencies
    min_size: int = 15  # wafer diameters in dies (the generator's size_range)
    max_size: int = 200
    # the generator's odds of drawing each systematic pattern into a training wafer, e.g.
    # {"scratch": 2.0} (None: equal odds); validation and test wafers always keep equal odds
    pattern_weights: dict[str, float] | None = None
    seed: int = TRAIN_SEED  # generator seed of the training stream, also torch's seed
    val_seed: int = VAL_SEED
    val_count: int = 300
    real_path: str | None = None  # WM-811K npz: wafer-level accuracy / macro-F1 at every evaluation
    real_per_label: int = 120  # real maps per WM-811K label in that fixed subset
    data: str | None = None  # a labelled .wdm file to train on instead of the generator
    eval_every: int = 250  # steps per "epoch" (the stream is endless)
    ckpt_every: int = 50
    minutes: float | None = None  # a time budget: the run ends (and the lr schedule follows) by the clock
    data_workers: int = 0  # processes making synthetic wafers ahead (0: in the training process)
    patience: int = 6  # evaluations without a better validation mIoU before stopping early
    select_on: str = "val_miou"  # the checkpoint kept as best.pt
    device: str = "auto"
    amp: str = "auto"  # auto: bf16/fp16 autocast on CUDA, off on CPU (bf16 there only if asked: CPU-dependent)
    threads: int = 0  # torch CPU threads (0: torch's default)
    init_from: str | None = None  # start from these weights (a checkpoint), fresh optimizer
    ema: float = 0.0  # decay of a moving average of the weights, evaluated and kept as best.pt (0: off)
    freeze_bn: bool = False  # BatchNorm keeps its running statistics while training (fine-tuning)
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(asdict(self), indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> TrainConfig:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def parse_pattern_weights(text: str) -> dict[str, float]:
    """``"scratch=2,lithography=2"`` -> ``{"scratch": 2.0, "lithography": 2.0}``, checked.

    Names must be systematic patterns (``random`` is the background, not a drawn pattern),
    weights finite and >= 0 (0: never drawn), and at least one pattern left to draw.
    """
    weights: dict[str, float] = {}
    for part in (p.strip() for p in text.split(",")):
        name, eq, value = part.partition("=")
        name = name.strip()
        if not part or not eq:
            raise WaferDeskError(f"pattern weight {part!r}: expected NAME=WEIGHT, e.g. scratch=2")
        if name not in SYSTEMATIC:
            raise WaferDeskError(
                f"pattern weight {part!r}: {name!r} is not a pattern; choose from {', '.join(SYSTEMATIC)}"
            )
        try:
            w = float(value)
        except ValueError:
            raise WaferDeskError(f"pattern weight {part!r}: {value.strip()!r} is not a number") from None
        if not (math.isfinite(w) and w >= 0):
            raise WaferDeskError(f"pattern weight {part!r}: the weight must be a finite number >= 0")
        if name in weights:
            raise WaferDeskError(f"pattern weight {part!r}: {name} is given twice")
        weights[name] = w
    if not any(weights.get(c, 1.0) > 0 for c in SYSTEMATIC):
        raise WaferDeskError(f"pattern weights {text!r}: every pattern has weight 0, nothing left to draw")
    return weights
