"""Training and evaluation data: endless synthetic batches, ``.wdm`` files, real WM-811K maps.

Synthetic training data is made on the fly (the generator makes a wafer in ~3 ms, far less
than a training step), so the network never sees the same wafer twice. Every training wafer
is a pure function of ``(seed, index)`` (augmentation included), and the stream's state is
just the next index plus the indices waiting in the canvas buckets: a resumed run continues
with exactly the batches an uninterrupted run would have seen.

Batches share one canvas (:func:`waferdesk.core.encoding.canvas_for`), so no wafer is
padded beyond what the encoding itself does, and hold about the same number of pixels:
``batch_size`` wafers on a 64x64 canvas, fewer on larger ones (at least ``min_batch``).

On a GPU the network outruns one CPU core making wafers (~300 a second measured here; a
GPU step on a batch of 32 wants them faster than that), so ``SynthStream(workers=N)`` makes
them ahead in N processes. Because each wafer is a pure function of its index, the workers
only compute what the stream would have computed itself, in the same order: the batches are
identical with and without them (tested), and a run can resume with another worker count.
"""

from __future__ import annotations

import multiprocessing
import zipfile
import zlib
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from waferdesk.core.encoding import canvas_for, encode_batch, encode_labels
from waferdesk.core.records import WaferRecord
from waferdesk.core.synth import SynthConfig, generate_record
from waferdesk.core.taxonomy import IGNORE
from waferdesk.core.wafer import LabelMask, WaferMap

BASE_PIXELS = 64 * 64
AUG_STREAM = 0xA06  # third word of an augmentation rng seed: never collides with generator rngs


# -- augmentation on the die grid ------------------------------------------------------------
def dihedral(grid: np.ndarray, k: int) -> np.ndarray:
    """One of the 8 symmetries of the square: transpose (k & 4), flip rows (k & 1), flip cols (k & 2).

    Applied to the DIE GRID (and its labels) before encoding, so the coordinate channels are
    computed for the transformed wafer and stay consistent with what the network sees.
    """
    g = grid.T if k & 4 else grid
    if k & 1:
        g = g[::-1, :]
    if k & 2:
        g = g[:, ::-1]
    return np.ascontiguousarray(g)


def augment(
    dies: np.ndarray, labels: np.ndarray, rng: np.random.Generator, max_margin: int = 2
) -> tuple[np.ndarray, np.ndarray]:
    """Label-preserving changes of a wafer: a dihedral symmetry and a random empty margin.

    The margin (0..``max_margin`` rows/cols of no-die cells on each side) moves the wafer on
    its canvas, as testers' maps come cropped more or less tightly; the encoding's
    coordinates follow the on-wafer dies, so they do not change.
    """
    k = int(rng.integers(0, 8))
    d, lab = dihedral(dies, k), dihedral(labels, k)
    if max_margin > 0 and rng.random() < 0.5:
        t, b, left, r = (int(v) for v in rng.integers(0, max_margin + 1, size=4))
        d = np.pad(d, ((t, b), (left, r)), constant_values=0)
        lab = np.pad(lab, ((t, b), (left, r)), constant_values=IGNORE)
    return d, lab


def batch_for(canvas: tuple[int, int], batch_size: int, min_batch: int = 2) -> int:
    """Wafers per batch on ``canvas``: about ``batch_size`` x 64x64 pixels in all."""
    return max(min_batch, min(batch_size, round(batch_size * BASE_PIXELS / (canvas[0] * canvas[1]))))


def make_targets(grids: Sequence[np.ndarray], labels: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Encoded inputs (N, C, H, W) float32 and canvas labels (N, H, W) uint8 of one canvas."""
    x, places = encode_batch(list(grids))
    y = np.stack([encode_labels(lab, p, IGNORE) for lab, p in zip(labels, places, strict=True)])
    return x, y


# -- the endless synthetic stream -----------------------------------------------------------
@dataclass
class StreamState:
    next_index: int = 0
    buckets: dict[str, list[int]] = field(default_factory=dict)  # "HxW" -> waiting indices

    def to_json(self) -> dict:
        return {"next_index": self.next_index, "buckets": {k: list(v) for k, v in self.buckets.items()}}

    @classmethod
    def from_json(cls, d: dict) -> StreamState:
        return cls(int(d["next_index"]), {str(k): [int(i) for i in v] for k, v in d.get("buckets", {}).items()})


def training_wafer(seed: int, cfg: SynthConfig, augment_data: bool, index: int) -> tuple[np.ndarray, np.ndarray]:
    """Die grid and labels of training wafer ``index`` of data set ``seed`` (augmented when
    enabled): a pure function, so any process may make it."""
    rec = generate_record(seed, index, cfg)
    dies, lab = rec.wafer.dies, rec.mask.labels
    if augment_data:
        dies, lab = augment(dies, lab, np.random.default_rng([seed, index, AUG_STREAM]))
    return dies, lab


class SynthStream:
    """Endless canvas-bucketed training batches from the generator (deterministic, resumable).

    ``workers`` > 0 makes the wafers ahead in that many processes (``spawn``ed: safe beside
    CUDA and OpenMP threads), ``lookahead`` wafers per worker in flight; :meth:`close` stops
    them. The batches do not depend on ``workers``."""

    def __init__(
        self,
        seed: int,
        cfg: SynthConfig | None = None,
        batch_size: int = 16,
        min_batch: int = 2,
        augment_data: bool = True,
        state: StreamState | None = None,
        workers: int = 0,
        lookahead: int = 32,
    ) -> None:
        self.seed, self.cfg = seed, cfg or SynthConfig()
        self.batch_size, self.min_batch, self.augment_data = batch_size, min_batch, augment_data
        self.state = state or StreamState()
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self.workers = max(0, int(workers))
        self._ahead = self.workers * max(1, lookahead)
        self._pool: ProcessPoolExecutor | None = None
        self._pending: deque[tuple[int, Future]] = deque()

    def wafer(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Die grid and labels of training wafer ``index`` (augmented when enabled)."""
        return training_wafer(self.seed, self.cfg, self.augment_data, index)

    def _next_wafer(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Wafer ``index`` (= the state's next index), from the workers when there are any."""
        if not self.workers:
            return self.wafer(index)
        if self._pool is None:
            ctx = multiprocessing.get_context("spawn")
            self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=ctx)
        if self._pending and self._pending[0][0] != index:  # the state was replaced (a resume): start again
            for _, fut in self._pending:
                fut.cancel()
            self._pending.clear()
        nxt = self._pending[-1][0] + 1 if self._pending else index
        while nxt < index + self._ahead:
            fut = self._pool.submit(training_wafer, self.seed, self.cfg, self.augment_data, nxt)
            self._pending.append((nxt, fut))
            nxt += 1
        return self._pending.popleft()[1].result()

    def close(self) -> None:
        """Stop the worker processes (a no-op without them); the stream can go on after."""
        if self._pool is not None:
            for _, fut in self._pending:
                fut.cancel()
            self._pending.clear()
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        return self

    def __next__(self) -> tuple[np.ndarray, np.ndarray]:
        st = self.state
        while True:
            i = st.next_index
            st.next_index += 1
            dies, lab = self._next_wafer(i)
            self._cache[i] = (dies, lab)
            canvas = canvas_for(dies.shape)
            key = f"{canvas[0]}x{canvas[1]}"
            waiting = st.buckets.setdefault(key, [])
            waiting.append(i)
            if len(waiting) >= batch_for(canvas, self.batch_size, self.min_batch):
                del st.buckets[key]
                items = [self._cache.pop(j) if j in self._cache else self.wafer(j) for j in waiting]
                return make_targets([d for d, _ in items], [lab for _, lab in items])


# -- fixed sets -------------------------------------------------------------------------------
def synthetic_set(seed: int, count: int, cfg: SynthConfig | None = None) -> list[WaferRecord]:
    """Wafers ``0..count-1`` of data set ``seed`` (validation / test: a seed never trained on)."""
    cfg = cfg or SynthConfig()
    return [generate_record(seed, i, cfg) for i in range(count)]


def read_labelled(path: str | Path) -> list[WaferRecord]:
    """Records of a wafer file that carry a complete label mask (e.g. ``waferdesk synth --out``)."""
    from waferdesk.core.errors import FormatError
    from waferdesk.core.formats import read_wdm

    recs = read_wdm(path)
    out = [r for r in recs if r.mask is not None]
    if not out:
        raise FormatError(path, "holds no wafer with a label mask; training and evaluation need ground truth")
    return out


class RecordBatches:
    """Epochs over a fixed list of labelled records, shuffled and augmented, canvas-bucketed."""

    def __init__(self, records: Sequence[WaferRecord], seed: int, batch_size: int = 16, min_batch: int = 2) -> None:
        self.records = list(records)
        self.seed, self.batch_size, self.min_batch = seed, batch_size, min_batch
        self.state = StreamState()  # next_index counts wafers drawn over all epochs

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        return self

    def _wafer(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        n = len(self.records)
        epoch, pos = divmod(k, n)
        order = np.random.default_rng([self.seed, epoch]).permutation(n)
        rec = self.records[int(order[pos])]
        assert rec.mask is not None
        return augment(rec.wafer.dies, rec.mask.labels, np.random.default_rng([self.seed, k, AUG_STREAM]))

    def __next__(self) -> tuple[np.ndarray, np.ndarray]:
        st = self.state
        while True:
            k = st.next_index
            st.next_index += 1
            dies, _ = self._wafer(k)
            canvas = canvas_for(dies.shape)
            key = f"{canvas[0]}x{canvas[1]}"
            waiting = st.buckets.setdefault(key, [])
            waiting.append(k)
            if len(waiting) >= batch_for(canvas, self.batch_size, self.min_batch):
                del st.buckets[key]
                items = [self._wafer(j) for j in waiting]
                return make_targets([d for d, _ in items], [lab for _, lab in items])


# -- real WM-811K maps ------------------------------------------------------------------------
WM811K_TO_CLASS = {
    "Center": "center",
    "Donut": "ring",
    "Edge-Loc": "edge",
    "Edge-Ring": "edge",
    "Loc": "particle",
    "Scratch": "scratch",
    "Random": "random",
    "Near-full": "etching",
    "none": "none",
}
"""WM-811K wafer labels -> WaferDesk verdict classes (the data README's mapping)."""
WM811K_LABELS = tuple(WM811K_TO_CLASS)


WM811K_LAYOUT = "arrays maps_flat, shapes, offsets, labels"


def load_wm811k(path: str | Path, indices: Sequence[int] | None = None) -> list[WaferMap]:
    """Real maps of the WM-811K npz (see ../shared/data/README.md) with ``label`` set."""
    from waferdesk.core.errors import FormatError

    p = Path(path)
    try:
        with np.load(p, allow_pickle=False) as z:
            flat, shapes, offsets, labels = z["maps_flat"], z["shapes"], z["offsets"], z["labels"]
    except FileNotFoundError:
        raise FormatError(p, "real-data file not found") from None
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error):
        # numpy's own words ("... load it unsafely using the allow_pickle= keyword") misled users
        raise FormatError(p, f"not a WM-811K .npz in the expected layout ({WM811K_LAYOUT})") from None
    idx = range(len(shapes)) if indices is None else indices
    out = []
    for i in idx:
        try:
            a, b = int(offsets[i]), int(offsets[i + 1])
            out.append(
                WaferMap(
                    dies=flat[a:b].reshape(int(shapes[i][0]), int(shapes[i][1])),
                    source=f"{p.name}#{i}",
                    label=str(labels[i]),
                )
            )
        except (IndexError, ValueError, TypeError) as exc:  # offsets / shapes / labels that do not fit together
            raise FormatError(p, f"map {i}: {exc}") from None
    return out


def wm811k_labels(path: str | Path) -> np.ndarray:
    with np.load(path, allow_pickle=False) as z:
        return np.asarray(z["labels"]).astype(str)


def stratified_subset(labels: np.ndarray, per_label: int, seed: int = 0) -> list[int]:
    """Up to ``per_label`` indices of each label (fixed by ``seed``), sorted."""
    rng = np.random.default_rng(seed)
    out: list[int] = []
    for lab in sorted(set(labels.tolist())):
        idx = np.flatnonzero(labels == lab)
        take = min(per_label, len(idx))
        out += rng.choice(idx, take, replace=False).tolist()
    return sorted(out)


def truth_masks(records: Sequence[WaferRecord]) -> list[LabelMask]:
    masks = []
    for r in records:
        if r.mask is None:
            raise ValueError(f"wafer {r.wafer.name}: no ground-truth mask")
        masks.append(r.mask)
    return masks
