"""The data model: a wafer map (die grid + metadata) and a per-die label mask.

A die grid is a 2-D ``uint8`` array with the WM-811K codes ``0`` no die, ``1`` pass,
``2`` fail. Testers often report many bin codes instead; a map may carry them in ``bins``
together with ``bin_pass`` (which codes mean pass), and ``dies`` is then derived from them.
A label mask has the same shape and holds, for each FAILING die, one taxonomy class index,
and :data:`~waferdesk.core.taxonomy.IGNORE` everywhere else.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace

import numpy as np

from .errors import ValidationError
from .taxonomy import IGNORE, Taxonomy, default_taxonomy

NO_DIE, PASS, FAIL = 0, 1, 2
NOTCH_DIRECTIONS = ("down", "up", "left", "right")
MAX_SIDE = 4096
"""Largest die-grid side accepted anywhere (real maps stay under ~300; this stops absurd files)."""


def check_grid(dies: object, what: str = "die grid") -> np.ndarray:
    """Return ``dies`` as a C-contiguous uint8 2-D array, or raise naming the problem."""
    arr = np.asarray(dies)
    if arr.ndim != 2:
        raise ValidationError(f"{what}: expected a 2-D array, got shape {arr.shape}")
    h, w = arr.shape
    if h < 1 or w < 1 or h > MAX_SIDE or w > MAX_SIDE:
        raise ValidationError(f"{what}: size {h}x{w} outside 1..{MAX_SIDE} dies per side")
    if arr.dtype.kind not in "iub":
        raise ValidationError(f"{what}: dtype {arr.dtype} is not an integer type")
    bad = (arr < 0) | (arr > FAIL)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise ValidationError(
            f"{what}: value {int(arr[r, c])} at row {r}, col {c}; allowed 0 (no die), 1 (pass), 2 (fail)"
        )
    return np.ascontiguousarray(arr, dtype=np.uint8)


@dataclass(frozen=True, eq=False)
class WaferMap:
    """One wafer's test result as a die grid, plus what is known about it.

    ``label`` is a wafer-level label given by the source (e.g. WM-811K ``failureType``);
    WaferDesk's own per-die labels live in a :class:`LabelMask`.
    """

    dies: np.ndarray
    lot: str = ""
    wafer_id: str = ""
    product: str = ""
    notch: str = "down"
    die_pitch: tuple[float, float] | None = None  # (x, y) in mm
    source: str = ""
    label: str | None = None
    bins: np.ndarray | None = None  # int32 bin code per die, -1 = no die
    bin_pass: frozenset[int] | None = None
    extra: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "dies", check_grid(self.dies, f"wafer {self.name or '?'}"))
        self.dies.setflags(write=False)
        if self.notch not in NOTCH_DIRECTIONS:
            raise ValidationError(f"wafer {self.name}: notch {self.notch!r} not one of {NOTCH_DIRECTIONS}")
        if self.bins is not None:
            bins = np.asarray(self.bins)
            if bins.shape != self.dies.shape:
                raise ValidationError(f"wafer {self.name}: bins shape {bins.shape} != die grid {self.dies.shape}")
            object.__setattr__(self, "bins", np.ascontiguousarray(bins, dtype=np.int32))
        if self.die_pitch is not None:
            px, py = (float(v) for v in self.die_pitch)
            if not (px > 0 and py > 0 and np.isfinite(px) and np.isfinite(py)):
                raise ValidationError(f"wafer {self.name}: die pitch {self.die_pitch} must be positive")
            object.__setattr__(self, "die_pitch", (px, py))

    # -- identity --------------------------------------------------------------------------
    @property
    def name(self) -> str:
        """Human name: ``lot/wafer`` when known, else the source."""
        if self.lot or self.wafer_id:
            return f"{self.lot or '?'}/{self.wafer_id or '?'}"
        return self.source

    def grid_hash(self) -> str:
        """sha256 of what a model sees: the shape and the 0/1/2 die codes."""
        h = hashlib.sha256()
        h.update(np.asarray(self.dies.shape, dtype="<i4").tobytes())
        h.update(self.dies.tobytes())
        return h.hexdigest()

    def content_hash(self) -> str:
        """Stable sha256 of the wafer: grid, bin codes and identifying metadata.

        Independent of the source file and of Python's hash seed, so the same wafer read from
        two formats hashes the same; used for de-duplication and the prediction cache.
        """
        h = hashlib.sha256(self.grid_hash().encode())
        for text in (self.lot, self.wafer_id, self.product):
            h.update(b"\x00" + text.encode("utf-8"))
        if self.bins is not None:
            h.update(b"\x01" + self.bins.astype("<i4").tobytes())
        return h.hexdigest()

    # -- die statistics --------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.dies.shape[0]), int(self.dies.shape[1]))

    @property
    def on_wafer(self) -> np.ndarray:
        return self.dies != NO_DIE

    @property
    def fail_mask(self) -> np.ndarray:
        return self.dies == FAIL

    @property
    def n_dies(self) -> int:
        return int(np.count_nonzero(self.dies))

    @property
    def n_fail(self) -> int:
        return int(np.count_nonzero(self.dies == FAIL))

    @property
    def fail_rate(self) -> float:
        n = self.n_dies
        return self.n_fail / n if n else 0.0

    @property
    def yield_(self) -> float:
        return 1.0 - self.fail_rate if self.n_dies else 0.0

    def with_(self, **changes: object) -> WaferMap:
        """A copy with some fields replaced (the map itself is immutable)."""
        return replace(self, **changes)

    @classmethod
    def from_bins(
        cls, bins: np.ndarray, bin_pass: set[int] | frozenset[int], no_die: int = -1, **meta: object
    ) -> WaferMap:
        """Build a map from bin codes: ``no_die`` means no die, codes in ``bin_pass`` pass, others fail."""
        b = np.asarray(bins, dtype=np.int64)
        if b.ndim != 2:
            raise ValidationError(f"bin grid: expected 2-D, got shape {b.shape}")
        dies = np.where(b == no_die, NO_DIE, np.where(np.isin(b, list(bin_pass)), PASS, FAIL)).astype(np.uint8)
        b = np.where(b == no_die, -1, b)
        return cls(dies=dies, bins=b, bin_pass=frozenset(int(x) for x in bin_pass), **meta)


def check_mask_values(labels: np.ndarray, n_classes: int, what: str) -> None:
    bad = (labels >= n_classes) & (labels != IGNORE)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise ValidationError(
            f"{what}: label value {int(labels[r, c])} at row {r}, col {c} is not a class index "
            f"0..{n_classes - 1} or the ignore value {IGNORE}"
        )


@dataclass(frozen=True, eq=False)
class LabelMask:
    """Per-die classes of one wafer: a class index on failing dies, ``IGNORE`` elsewhere.

    A draft may leave failing dies unlabelled (``IGNORE``); :meth:`validate` with
    ``complete=True`` demands every failing die be labelled (ground truth).
    """

    labels: np.ndarray

    def __post_init__(self) -> None:
        arr = np.asarray(self.labels)
        if arr.ndim != 2:
            raise ValidationError(f"label mask: expected a 2-D array, got shape {arr.shape}")
        if arr.dtype.kind not in "iu":
            raise ValidationError(f"label mask: dtype {arr.dtype} is not an integer type")
        if arr.size and (arr.min() < 0 or arr.max() > IGNORE):
            raise ValidationError(f"label mask: values must lie in 0..{IGNORE}")
        object.__setattr__(self, "labels", np.ascontiguousarray(arr, dtype=np.uint8))

    @classmethod
    def empty(cls, shape: tuple[int, int]) -> LabelMask:
        return cls(np.full(shape, IGNORE, dtype=np.uint8))

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.labels.shape[0]), int(self.labels.shape[1]))

    def validate(self, wafer: WaferMap, complete: bool = False, taxonomy: Taxonomy | None = None) -> None:
        """Raise :class:`ValidationError` naming the first problem against ``wafer``."""
        tax = taxonomy or default_taxonomy()
        what = f"label mask of wafer {wafer.name or '?'}"
        if self.shape != wafer.shape:
            raise ValidationError(f"{what}: shape {self.shape} != wafer {wafer.shape}")
        check_mask_values(self.labels, len(tax), what)
        labelled = self.labels != IGNORE
        wrong = labelled & (wafer.dies != FAIL)
        if wrong.any():
            r, c = np.argwhere(wrong)[0]
            state = "no-die cell" if wafer.dies[r, c] == NO_DIE else "pass die"
            raise ValidationError(
                f"{what}: class {tax.names[self.labels[r, c]]!r} on a {state} at row {r}, col {c}; "
                f"only failing dies carry labels ({int(wrong.sum())} such cells)"
            )
        if complete:
            missing = (wafer.dies == FAIL) & ~labelled
            if missing.any():
                r, c = np.argwhere(missing)[0]
                raise ValidationError(
                    f"{what}: failing die at row {r}, col {c} has no class ({int(missing.sum())} unlabelled fails)"
                )

    def is_complete(self, wafer: WaferMap) -> bool:
        return bool(np.all((self.labels != IGNORE) == (wafer.dies == FAIL)))

    def restricted_to_fails(self, wafer: WaferMap) -> LabelMask:
        """A copy with labels kept on failing dies only (what every tool writes)."""
        return LabelMask(np.where(wafer.dies == FAIL, self.labels, IGNORE).astype(np.uint8))

    def counts(self, n_classes: int | None = None) -> np.ndarray:
        """Number of labelled dies per class (length = number of classes)."""
        n = n_classes or len(default_taxonomy())
        lab = self.labels[self.labels != IGNORE]
        return np.bincount(lab, minlength=n)[:n].astype(np.int64)
