"""Training job bodies: the job spec people submit, what they read back, what workers send.

The spec is stored as given (``model_dump``) and handed to the worker as it is, so its field
names are the contract between the server and ``waferdesk.worker`` (docs/training.md).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, Strict, field_validator, model_validator

from .common import DbId

ENCODERS = ("resnet18", "resnet34", "resnet50")
VAL_SEED = 202  # the ml package's validation data seed (waferdesk.ml.config.VAL_SEED)
# Counts, steps, seeds and ids of the spec are strict integers: JSON true or 1.5 (or 4.0) is a
# 422 naming the field, never read as 1 (or cut to 1) and stored in the spec the worker runs.
SpecId = Annotated[DbId, Strict()]


class DataSelection(BaseModel):
    """What the model learns from: approved annotations (ground truth) and/or synthetic wafers."""

    model_config = ConfigDict(extra="forbid")

    annotations: bool = Field(True, description="train on approved annotations (the wafers' die grids + masks)")
    rounds: list[SpecId] | None = Field(
        None, description="only annotations of wafers queued in these active-learning rounds (default: any)"
    )
    lots: list[str] | None = Field(None, description="only annotations of wafers of these lots (default: any)")
    synthetic_count: int = Field(
        0, ge=0, le=500_000, strict=True, description="synthetic wafers (with exact masks) mixed into the training set"
    )
    synthetic_seed: int | None = Field(
        None, ge=0, le=2**31 - 1, strict=True, description="their generator seed (default: seed)"
    )
    min_size: int = Field(15, ge=4, le=1000, strict=True, description="smallest synthetic wafer, dies across")
    max_size: int = Field(200, ge=4, le=1000, strict=True, description="largest synthetic wafer, dies across")

    @field_validator("rounds")
    @classmethod
    def _rounds(cls, v: list[int] | None) -> list[int] | None:
        if v is not None and (not v or any(r < 1 for r in v)):
            raise ValueError("rounds must be a non-empty list of round numbers >= 1 (or left out for any round)")
        return v

    @field_validator("lots")
    @classmethod
    def _lots(cls, v: list[str] | None) -> list[str] | None:
        if v is not None and (not v or any(not s.strip() for s in v)):
            raise ValueError("lots must be a non-empty list of lot ids (or left out for any lot)")
        return v

    @model_validator(mode="after")
    def _sizes(self) -> DataSelection:
        if self.min_size > self.max_size:
            raise ValueError(f"min_size ({self.min_size}) must not exceed max_size ({self.max_size})")
        return self


class JobSpec(BaseModel):
    """A training job: model, schedule, data, seed. ``epochs`` = evaluations; metrics come per epoch."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, max_length=64, description="a name for the model this job makes")
    architecture: Literal["unet"] = "unet"
    encoder: Literal["resnet18", "resnet34", "resnet50"] = Field("resnet50", description="U-Net encoder")
    steps: int = Field(4000, ge=1, le=10_000_000, strict=True, description="optimizer steps in all")
    epochs: int = Field(
        16,
        ge=1,
        le=10_000,
        strict=True,
        description="evaluations (per-epoch metrics); an epoch is steps/epochs optimizer steps",
    )
    batch_size: int = Field(
        16, ge=1, le=1024, strict=True, description="wafers per batch on a 64x64 canvas (fewer on larger)"
    )
    learning_rate: float = Field(2e-3, gt=0, le=1.0, description="peak learning rate (AdamW)")
    schedule: Literal["cosine", "onecycle"] = "cosine"
    seed: int = Field(
        101, ge=0, le=2**31 - 1, strict=True, description="training seed (torch, shuffling, augmentation)"
    )
    val_seed: int = Field(
        VAL_SEED, ge=0, le=2**31 - 1, strict=True, description="seed of the synthetic validation wafers"
    )
    val_count: int = Field(
        300, ge=1, le=100_000, strict=True, description="synthetic validation wafers evaluated every epoch"
    )
    patience: int | None = Field(
        None, ge=1, strict=True, description="epochs without a better mIoU before stopping early"
    )
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?)$", description="auto: CUDA when present")
    threads: int = Field(0, ge=0, le=256, strict=True, description="torch CPU threads (0: torch's default)")
    data: DataSelection = Field(default_factory=DataSelection)
    ema: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="decay of a moving average of the weights that is evaluated and kept as the model "
        "(e.g. 0.999); 0: the weights as trained",
    )
    freeze_bn: bool = Field(
        False, strict=True, description="BatchNorm keeps its statistics while training (fine-tuning, small data)"
    )
    init_model: SpecId | Literal["active"] | None = Field(
        None,
        description=(
            "fine-tune: start from this registered model (its id, or 'active' for the one serving "
            "predictions; stored as its id) instead of random weights. Its encoder must be this job's."
        ),
    )

    @model_validator(mode="after")
    def _consistent(self) -> JobSpec:
        if self.epochs > self.steps:
            raise ValueError(
                f"epochs ({self.epochs}) cannot exceed steps ({self.steps}): an epoch is steps/epochs optimizer steps"
            )
        synth_seed = self.data.synthetic_seed if self.data.synthetic_seed is not None else self.seed
        if self.data.synthetic_count and synth_seed == self.val_seed:
            raise ValueError(
                f"the synthetic training seed and val_seed are both {self.val_seed}: "
                "validation must use wafers never trained on"
            )
        return self


class JobOut(BaseModel):
    id: int
    status: Literal["queued", "running", "succeeded", "failed", "cancelled"]
    backend: str
    backend_handle: str | None
    spec: dict[str, Any]
    created_by: int | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    heartbeat_at: datetime | None
    error: str | None
    model_id: int | None
    epochs_reported: int = 0
    latest: dict[str, Any] | None = Field(None, description="the last epoch's metrics")


class JobPage(BaseModel):
    total: int
    items: list[JobOut]


class EpochMetrics(BaseModel):
    """One epoch, as a worker reports it and as people read it."""

    model_config = ConfigDict(extra="forbid")

    epoch: int = Field(ge=1)
    step: int = Field(ge=0)
    train_loss: float | None = None
    val_loss: float | None = None
    lr: float | None = Field(None, ge=0)
    miou: float | None = Field(None, ge=0, le=1)
    class_iou: dict[str, float | None] = Field(default_factory=dict)
    extra: dict[str, Any] = Field(default_factory=dict)


class MetricsOut(BaseModel):
    job_id: int
    status: str
    classes: list[str]
    epochs: list[EpochMetrics]
    best: EpochMetrics | None = Field(None, description="the epoch with the highest mIoU")


class LogLine(BaseModel):
    seq: int
    at: datetime
    source: str
    text: str


class LogPage(BaseModel):
    job_id: int
    status: str
    lines: list[LogLine]
    next_after: int = Field(description="pass as ?after= to get only newer lines")


# -- worker bodies -------------------------------------------------------------------------------
class WorkerStatus(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: Literal["running", "succeeded", "failed"]
    error: str | None = Field(None, max_length=20_000, description="failed: what went wrong, in words")
    message: str | None = Field(None, max_length=4000, description="a line for the job's log")


class WorkerLogs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lines: list[str] = Field(max_length=1000)


class WorkerJob(BaseModel):
    id: int
    spec: dict[str, Any]
    classes: list[str]
    dataset: dict[str, Any] = Field(description="what GET .../dataset will return (counts)")
