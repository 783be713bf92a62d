"""Training configuration: every knob of a run, saved as ``config.json`` in its run directory."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

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
