"""Die-aware labelling operations, shared by the desktop tools and anything else that edits masks.

Every tool works in whole dies: a brush covers the dies whose centres lie within its
footprint, a polygon the dies whose centres lie inside it, a flood fill the failing dies
connected to the one clicked. Only failing dies carry labels, so :func:`make_change` keeps
just the failing dies whose value actually changes. A :class:`Change` holds only those dies
(flat indices) with their old and new values: the napari-style undo record, small however
big the wafer is.

Coordinates: ``row`` / ``col`` index the die grid; continuous positions use die units with
die (r, c) covering ``[r, r+1) x [c, c+1)``, so its centre is ``(r + 0.5, c + 0.5)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .taxonomy import IGNORE
from .wafer import FAIL

BRUSH_SHAPES = ("circle", "square")


@dataclass(frozen=True, eq=False)
class Change:
    """Dies changed by one action: flat indices into the grid, values before and after."""

    index: np.ndarray  # int64 flat indices, sorted, unique
    old: np.ndarray  # uint8
    new: np.ndarray  # uint8

    def __len__(self) -> int:
        return int(self.index.size)

    def apply(self, labels: np.ndarray) -> None:
        labels.reshape(-1)[self.index] = self.new

    def revert(self, labels: np.ndarray) -> None:
        labels.reshape(-1)[self.index] = self.old

    def cells(self, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """(rows, cols) of the changed dies."""
        return np.unravel_index(self.index, shape)  # type: ignore[return-value]

    def merged(self, later: Change) -> Change:
        """This change followed by ``later`` as one change (old from the first touch of each die)."""
        index = np.concatenate([self.index, later.index])
        old = np.concatenate([self.old, later.old])
        new = np.concatenate([self.new, later.new])
        # first occurrence keeps the oldest value; last occurrence the newest
        uniq, first = np.unique(index, return_index=True)
        _, last_rev = np.unique(index[::-1], return_index=True)
        last = index.size - 1 - last_rev
        keep = old[first] != new[last]
        return Change(uniq[keep], old[first][keep], new[last][keep])


def make_change(labels: np.ndarray, dies: np.ndarray, cells: np.ndarray, value: int) -> Change | None:
    """The change that sets ``value`` on the failing dies of the boolean ``cells`` (None if none).

    ``value`` is a class index or :data:`IGNORE` (erase). Pass and no-die cells are skipped:
    they carry no label.
    """
    target = np.asarray(cells, dtype=bool) & (dies == FAIL)
    index = np.flatnonzero(target.ravel())
    if index.size == 0:
        return None
    old = labels.reshape(-1)[index]
    differs = old != value
    if not differs.any():
        return None
    index = index[differs]
    return Change(index.astype(np.int64), old[differs].copy(), np.full(index.size, value, dtype=np.uint8))


def replace_all(labels: np.ndarray, new_labels: np.ndarray) -> Change | None:
    """The change that turns ``labels`` into ``new_labels`` (e.g. accepting a prediction)."""
    index = np.flatnonzero(labels.ravel() != new_labels.ravel())
    if index.size == 0:
        return None
    return Change(index.astype(np.int64), labels.reshape(-1)[index].copy(), new_labels.reshape(-1)[index].copy())


# -- footprints ------------------------------------------------------------------------------
def brush_cells(shape: tuple[int, int], row: float, col: float, size: int, kind: str = "circle") -> np.ndarray:
    """Boolean grid of the dies a brush of ``size`` dies across covers, centred on die (row, col).

    ``size`` 1 is exactly the die under the cursor; a circle holds the dies whose centres lie
    within ``size / 2`` of the centre die's centre, a square is ``size`` x ``size`` dies.
    """
    if kind not in BRUSH_SHAPES:
        raise ValueError(f"brush shape {kind!r} not one of {BRUSH_SHAPES}")
    size = max(1, int(size))
    out = np.zeros(shape, dtype=bool)
    r0, c0 = int(np.floor(row)), int(np.floor(col))
    lo = -((size - 1) // 2)
    hi = size // 2
    rs = np.arange(r0 + lo, r0 + hi + 1)
    cs = np.arange(c0 + lo, c0 + hi + 1)
    rr, cc = np.meshgrid(rs, cs, indexing="ij")
    keep = (rr >= 0) & (rr < shape[0]) & (cc >= 0) & (cc < shape[1])
    if kind == "circle" and size > 2:
        # centre of the footprint (between dies for even sizes) to each die centre
        cy, cx = r0 + (lo + hi) / 2, c0 + (lo + hi) / 2
        keep &= (rr - cy) ** 2 + (cc - cx) ** 2 <= (size / 2) ** 2 + 1e-9
    out[rr[keep], cc[keep]] = True
    return out


def stroke_cells(
    shape: tuple[int, int], start: tuple[float, float], end: tuple[float, float], size: int, kind: str = "circle"
) -> np.ndarray:
    """Dies a brush covers dragged from ``start`` to ``end`` (row, col) with no gaps between dabs."""
    (r0, c0), (r1, c1) = start, end
    steps = int(np.ceil(max(abs(r1 - r0), abs(c1 - c0)))) + 1
    out = np.zeros(shape, dtype=bool)
    for t in np.linspace(0.0, 1.0, steps):
        out |= brush_cells(shape, r0 + (r1 - r0) * t, c0 + (c1 - c0) * t, size, kind)
    return out


def polygon_cells(shape: tuple[int, int], vertices: Sequence[tuple[float, float]]) -> np.ndarray:
    """Dies whose centres lie inside the polygon ``vertices`` = [(x, y), ...] in die units.

    ``x`` runs along columns and ``y`` along rows (the view's coordinates); even-odd rule.
    Fewer than three vertices cover nothing.
    """
    out = np.zeros(shape, dtype=bool)
    pts = np.asarray(vertices, dtype=np.float64).reshape(-1, 2)
    if len(pts) < 3:
        return out
    xs, ys = pts[:, 0], pts[:, 1]
    c_lo = max(0, int(np.floor(xs.min() - 0.5)))
    c_hi = min(shape[1] - 1, int(np.ceil(xs.max() - 0.5)))
    r_lo = max(0, int(np.floor(ys.min() - 0.5)))
    r_hi = min(shape[0] - 1, int(np.ceil(ys.max() - 0.5)))
    if c_lo > c_hi or r_lo > r_hi:
        return out
    py, px = np.meshgrid(np.arange(r_lo, r_hi + 1) + 0.5, np.arange(c_lo, c_hi + 1) + 0.5, indexing="ij")
    inside = np.zeros(px.shape, dtype=bool)
    x0, y0 = xs, ys
    x1, y1 = np.roll(xs, -1), np.roll(ys, -1)
    for ax, ay, bx, by in zip(x0, y0, x1, y1, strict=True):
        if ay == by:
            continue
        crosses = (ay > py) != (by > py)
        x_at = ax + (py - ay) * (bx - ax) / (by - ay)
        inside ^= crosses & (px < x_at)
    out[r_lo : r_hi + 1, c_lo : c_hi + 1] = inside
    return out


def fail_cluster(dies: np.ndarray, row: int, col: int, connectivity: int = 8) -> np.ndarray:
    """The failing dies connected to die (row, col) (8- or 4-connected); empty if it passes."""
    h, w = dies.shape
    out = np.zeros((h, w), dtype=bool)
    if not (0 <= row < h and 0 <= col < w) or dies[row, col] != FAIL:
        return out
    if connectivity not in (4, 8):
        raise ValueError(f"connectivity must be 4 or 8, got {connectivity}")
    fail = dies == FAIL
    if connectivity == 8:
        steps = [(-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1)]
    else:
        steps = [(-1, 0), (1, 0), (0, -1), (0, 1)]
    # breadth-first over whole frontiers, vectorised per step: fast even for 300x300 clusters
    out[row, col] = True
    frontier = np.array([[row, col]])
    while frontier.size:
        nxt = []
        for dr, dc in steps:
            cand = frontier + np.array([dr, dc])
            ok = (cand[:, 0] >= 0) & (cand[:, 0] < h) & (cand[:, 1] >= 0) & (cand[:, 1] < w)
            cand = cand[ok]
            sel = fail[cand[:, 0], cand[:, 1]] & ~out[cand[:, 0], cand[:, 1]]
            cand = cand[sel]
            out[cand[:, 0], cand[:, 1]] = True
            nxt.append(cand)
        frontier = np.unique(np.concatenate(nxt), axis=0) if nxt else np.zeros((0, 2), int)
    return out


def restrict_to_fails(labels: np.ndarray, dies: np.ndarray) -> np.ndarray:
    """Labels kept on failing dies only (a model's mask may label every die)."""
    return np.where(dies == FAIL, labels, IGNORE).astype(np.uint8)
