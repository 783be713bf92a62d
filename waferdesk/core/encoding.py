"""The one input encoding of a die grid into network channels, shared byte for byte by
training (torch), ONNX inference in the desktop app, and the server.

Version 1 (``ENCODING_VERSION``):
- Small maps (longest side <= ``upscale_max_side`` dies) are enlarged 2x by repeating each
  die into a 2x2 block, so the most common real maps (~26 dies across) give the encoder's
  stride-2 stem four pixels per die; larger maps run at one pixel per die.
- The grid is centred on a canvas whose sides are multiples of 32 (at least 32): the U-Net
  halves the resolution five times.
- Channels (float32): fail, pass, on-wafer, normalised radius, normalised x, normalised y.
  The normalised coordinates put the wafer rim at radius 1 whatever the grid size or die
  aspect, so "edge", "center" and "ring" mean the same on every map.
Per-die scores are read back by averaging each die's block of logits (:func:`decode`).
A model card records this version; consumers refuse a model made for another one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .wafer import FAIL, NO_DIE, PASS

ENCODING_VERSION = 1
CHANNELS = ("fail", "pass", "on_wafer", "radius", "x", "y")
MULTIPLE = 32
UPSCALE_MAX_SIDE = 40


@dataclass(frozen=True)
class Placement:
    """Where a die grid sits on its canvas: scale (pixels per die) and top-left offset."""

    shape: tuple[int, int]  # die grid rows, cols
    scale: int
    top: int
    left: int
    canvas: tuple[int, int]


def scale_for(shape: tuple[int, int]) -> int:
    return 2 if max(shape) <= UPSCALE_MAX_SIDE else 1


def canvas_for(shape: tuple[int, int]) -> tuple[int, int]:
    """Canvas (rows, cols) a grid of ``shape`` is encoded on: scaled, rounded up to 32."""
    s = scale_for(shape)
    return tuple(max(MULTIPLE, -(-(n * s) // MULTIPLE) * MULTIPLE) for n in shape)  # type: ignore[return-value]


def placement(shape: tuple[int, int], canvas: tuple[int, int] | None = None) -> Placement:
    s = scale_for(shape)
    ch, cw = canvas or canvas_for(shape)
    h, w = shape[0] * s, shape[1] * s
    if h > ch or w > cw:
        raise ValueError(f"grid {shape} (scale {s}) does not fit canvas {(ch, cw)}")
    return Placement((int(shape[0]), int(shape[1])), s, (ch - h) // 2, (cw - w) // 2, (int(ch), int(cw)))


def wafer_frame(dies: np.ndarray) -> tuple[float, float, float, float]:
    """Centre (row, col) and semi-axes (rows, cols) of the on-wafer dies, in die units."""
    rows = np.flatnonzero((dies != NO_DIE).any(axis=1))
    cols = np.flatnonzero((dies != NO_DIE).any(axis=0))
    if rows.size == 0:
        h, w = dies.shape
        return h / 2, w / 2, max(h / 2, 0.5), max(w / 2, 0.5)
    r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    return (r0 + r1) / 2, (c0 + c1) / 2, (r1 - r0) / 2, (c1 - c0) / 2


def encode_into(out: np.ndarray, dies: np.ndarray, place: Placement) -> None:
    """Write the channels of one grid into ``out`` (C, canvas_h, canvas_w), already zeroed."""
    s, top, left = place.scale, place.top, place.left
    h, w = dies.shape
    big = np.repeat(np.repeat(dies, s, axis=0), s, axis=1) if s > 1 else dies
    sl = (slice(top, top + h * s), slice(left, left + w * s))
    out[0][sl] = big == FAIL
    out[1][sl] = big == PASS
    out[2][sl] = big != NO_DIE
    cr, cc, ar, ac = wafer_frame(dies)
    ch, cw = place.canvas
    # die-unit coordinates of every canvas pixel centre
    ys = ((np.arange(ch, dtype=np.float32) - top + 0.5) / s - cr) / ar
    xs = ((np.arange(cw, dtype=np.float32) - left + 0.5) / s - cc) / ac
    out[4] = xs[None, :]
    out[5] = ys[:, None]
    np.hypot(out[4], out[5], out=out[3])


def encode(dies: np.ndarray, canvas: tuple[int, int] | None = None) -> tuple[np.ndarray, Placement]:
    """Channels (C, H', W') float32 of one die grid and where it was placed."""
    place = placement(dies.shape, canvas)
    out = np.zeros((len(CHANNELS), *place.canvas), dtype=np.float32)
    encode_into(out, np.asarray(dies, dtype=np.uint8), place)
    return out, place


def encode_batch(grids: Sequence[np.ndarray]) -> tuple[np.ndarray, list[Placement]]:
    """One (N, C, H', W') array for grids that share a canvas (the largest one needed)."""
    canvases = [canvas_for(g.shape) for g in grids]
    canvas = (max(c[0] for c in canvases), max(c[1] for c in canvases))
    out = np.zeros((len(grids), len(CHANNELS), *canvas), dtype=np.float32)
    places = []
    for i, g in enumerate(grids):
        p = placement(g.shape, canvas)
        encode_into(out[i], np.asarray(g, dtype=np.uint8), p)
        places.append(p)
    return out, places


def decode(scores: np.ndarray, place: Placement) -> np.ndarray:
    """Per-die scores (K, rows, cols) from canvas scores (K, H', W'): each die's block mean."""
    s, (h, w) = place.scale, place.shape
    crop = scores[:, place.top : place.top + h * s, place.left : place.left + w * s]
    if s == 1:
        return crop
    # sum of the s*s strided views: ~10x faster than a 5-D reshape().mean() on a cropped view
    out = np.array(crop[:, 0::s, 0::s], dtype=np.result_type(crop.dtype, np.float32))
    for dy in range(s):
        for dx in range(s):
            if dy or dx:
                out += crop[:, dy::s, dx::s]
    out *= 1.0 / (s * s)
    return out


def encode_labels(labels: np.ndarray, place: Placement, ignore: int = 255) -> np.ndarray:
    """Label mask placed on the canvas like the input (for training targets)."""
    s = place.scale
    big = np.repeat(np.repeat(labels, s, axis=0), s, axis=1) if s > 1 else labels
    out = np.full(place.canvas, ignore, dtype=np.uint8)
    h, w = big.shape
    out[place.top : place.top + h, place.left : place.left + w] = big
    return out
