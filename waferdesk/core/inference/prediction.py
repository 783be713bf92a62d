"""What the engine returns for one wafer, and the numpy post-processing that makes it.

Everything here is computed from the per-die logits (the network's canvas logits averaged
over each die's block by :func:`waferdesk.core.encoding.decode`): class probabilities by a
softmax, the mask by argmax on failing dies only (pass dies and no-die cells carry no
class, as in every label mask), counts and verdict by :func:`waferdesk.core.results.summarize`,
and uncertainty scores over the failing dies, the ones the model is asked about.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..active.scores import scores_from_entropy_margin, top2
from ..results import WaferSummary
from ..taxonomy import IGNORE
from ..wafer import LabelMask


def softmax(logits: np.ndarray, axis: int = 0, inplace: bool = False) -> np.ndarray:
    """Numerically stable softmax in float32 (``inplace``: overwrite a float32 C-contiguous input)."""
    z = np.asarray(logits, dtype=np.float32)
    if inplace and z.flags.c_contiguous:
        z -= z.max(axis=axis, keepdims=True)
    else:
        z = z - z.max(axis=axis, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=axis, keepdims=True)
    return z


def argmax_axis(z: np.ndarray, axis: int = 0) -> np.ndarray:
    """``z.argmax(axis)`` as K contiguous compares (uint8 result).

    numpy's argmax only runs along the last axis (it transposes and copies otherwise): ten
    times slower on a 256x256 map. Ties go to the lower class index, like argmax.
    """
    zk = np.moveaxis(z, axis, 0)
    best = zk[0].copy()
    idx = np.zeros(best.shape, dtype=np.uint8)
    for k in range(1, zk.shape[0]):
        better = zk[k] > best
        idx[better] = k
        np.maximum(best, zk[k], out=best)
    return idx


def argmax0(z: np.ndarray) -> np.ndarray:
    return argmax_axis(z, 0)


@dataclass
class GroupOutput:
    """Post-processed arrays of n wafers that share one die-grid placement."""

    labels: np.ndarray  # (n, h, w) uint8, IGNORE off the failing dies
    probs: np.ndarray  # (n, K, h, w) float32
    counts: np.ndarray  # (n, K) int64 failing dies per class
    uncertainty: list[dict[str, float]]


def postprocess_group(die_logits: np.ndarray, fail: np.ndarray) -> GroupOutput:
    """Mask, probabilities, counts and uncertainty of n wafers at once.

    ``die_logits`` (n, K, h, w) float32 C-contiguous, overwritten by the probabilities;
    ``fail`` (n, h, w) bool. Whole-array numpy for the batch; only the per-wafer reductions
    over failing dies loop (they differ in length).
    """
    n, k = die_logits.shape[:2]
    lab = argmax_axis(die_logits, 1)
    labels = np.where(fail, lab, np.uint8(IGNORE))
    probs = softmax(die_logits, axis=1, inplace=True)
    counts = np.stack([np.count_nonzero((lab == c) & fail, axis=(1, 2)) for c in range(k)], axis=1)
    p = np.maximum(probs, 1e-12)
    ent = -(probs * np.log(p)).sum(axis=1) * (1.0 / math.log(k))
    t1, t2 = top2(probs, axis=1)
    margin = t1 - t2
    unc = [scores_from_entropy_margin(ent[i][fail[i]], margin[i][fail[i]]) for i in range(n)]
    return GroupOutput(labels=labels, probs=probs, counts=counts.astype(np.int64), uncertainty=unc)


def mask_from_logits(die_logits: np.ndarray, fail: np.ndarray) -> LabelMask:
    """Argmax class on failing dies, ``IGNORE`` elsewhere."""
    lab = np.where(fail, argmax_axis(die_logits, 0), np.uint8(IGNORE))
    return LabelMask(lab)


def rle(values: np.ndarray) -> list[list[int]]:
    """Run-length encoding of a raveled (C order) array: ``[[value, run], ...]``."""
    flat = np.asarray(values).ravel()
    if flat.size == 0:
        return []
    starts = np.flatnonzero(np.r_[True, flat[1:] != flat[:-1]])
    runs = np.diff(np.r_[starts, flat.size])
    return [[int(v), int(r)] for v, r in zip(flat[starts], runs, strict=True)]


def model_key(model_sha256: str, views: int = 1) -> str:
    """Cache key of a model run with ``views`` (the plain sha256 for one view)."""
    return model_sha256 if views == 1 else f"{model_sha256}+views{views}"


def _readonly(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False)
class Prediction:
    """The engine's answer for one wafer.

    Arrays are read-only (a prediction may be shared through the cache): copy before editing,
    e.g. ``LabelMask(pred.mask.labels.copy())``. ``latency_ms`` is the engine time spent on
    this wafer (its batch's encode + run + decode time divided by the batch size).
    """

    mask: LabelMask
    probs: np.ndarray  # (K, H, W) float32
    summary: WaferSummary
    uncertainty: dict[str, float]
    embedding: np.ndarray  # (E,) float32
    model_version: str
    model_sha256: str
    provider: str
    latency_ms: float
    wafer_hash: str
    cached: bool = False
    views: int = 1  # dihedral views averaged (test-time augmentation, see .views)

    @property
    def model_key(self) -> str:
        """What made this answer: the model file's sha256, plus the views when more than one."""
        return model_key(self.model_sha256, self.views)

    def __post_init__(self) -> None:
        _readonly(self.mask.labels)
        _readonly(self.probs)
        _readonly(self.embedding)

    @property
    def verdict(self) -> str:
        return str(self.summary.verdict)

    @property
    def shape(self) -> tuple[int, int]:
        return self.mask.shape

    def to_json(
        self, mask_format: str = "lists", include_probs: bool = False, include_embedding: bool = True
    ) -> dict[str, Any]:
        """A JSON-able dict. ``mask_format``: ``"lists"`` (rows of ints, 255 = no class) or
        ``"rle"`` (``[[value, run], ...]`` over the C-order raveled mask). The embedding is a
        list of floats (``include_embedding=False`` leaves it out: 2,048 numbers per wafer)."""
        labels = self.mask.labels
        if mask_format == "lists":
            mask: Any = labels.tolist()
        elif mask_format == "rle":
            mask = {"rle": rle(labels), "order": "C"}
        else:
            raise ValueError(f"mask_format {mask_format!r}: use 'lists' or 'rle'")
        out: dict[str, Any] = {
            "wafer_hash": self.wafer_hash,
            "shape": list(self.shape),
            "verdict": self.verdict,
            "counts": dict(self.summary.counts),
            "n_fail": self.summary.n_fail,
            "n_dies": self.summary.n_dies,
            "uncertainty": {k: round(float(v), 6) for k, v in self.uncertainty.items()},
            "mask": mask,
            "mask_ignore": IGNORE,
            "model": {
                "version": self.model_version,
                "sha256": self.model_sha256,
                "provider": self.provider,
                "views": self.views,
            },
            "latency_ms": round(self.latency_ms, 3),
            "cached": self.cached,
        }
        if include_embedding:
            out["embedding"] = np.round(self.embedding.astype(np.float64), 6).tolist()
        if include_probs:
            out["probs"] = np.round(self.probs, 5).tolist()
        return out
