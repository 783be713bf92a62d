"""Raster pictures of wafer maps: die colours, class overlay, crisp integer upscaling.

Pure numpy (+ Pillow only to write PNG files), so the CLI, the server and tests draw the
same picture the app shows, without Qt.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .atomic import atomic_open
from .taxonomy import IGNORE, Taxonomy, default_taxonomy
from .wafer import LabelMask, WaferMap


def die_rgb(dies: np.ndarray, taxonomy: Taxonomy | None = None) -> np.ndarray:
    """(H, W, 3) uint8 picture of a die grid in the taxonomy's die colours."""
    tax = taxonomy or default_taxonomy()
    lut = np.array([tax.die_colors["no_die"], tax.die_colors["pass"], tax.die_colors["fail"]], dtype=np.uint8)
    return lut[np.clip(dies, 0, 2)]


def overlay_rgb(
    wafer: WaferMap,
    mask: LabelMask | None = None,
    opacity: float = 0.85,
    colorblind: bool = False,
    taxonomy: Taxonomy | None = None,
) -> np.ndarray:
    """Die picture with each labelled die blended towards its class colour."""
    tax = taxonomy or default_taxonomy()
    img = die_rgb(wafer.dies, tax)
    if mask is None:
        return img
    labels = mask.labels
    hit = labels != IGNORE
    if hit.any():
        palette = np.array(tax.palette(colorblind) + [(0, 0, 0)] * (256 - len(tax)), dtype=np.float32)
        col = palette[labels[hit]]
        img = img.astype(np.float32)
        img[hit] = (1.0 - opacity) * img[hit] + opacity * col
        img = img.round().astype(np.uint8)
    return img


def upscale(img: np.ndarray, cell: int, gap: int = 0) -> np.ndarray:
    """Nearest-neighbour enlargement, ``cell`` pixels per die, optional dark gap between dies."""
    big = np.repeat(np.repeat(img, cell, axis=0), cell, axis=1)
    if gap and cell > 2 * gap:
        big = big.copy()
        for g in range(gap):
            big[cell - 1 - g :: cell, :] = (big[cell - 1 - g :: cell, :] * 0.55).astype(np.uint8)
            big[:, cell - 1 - g :: cell] = (big[:, cell - 1 - g :: cell] * 0.55).astype(np.uint8)
    return big


def auto_cell(shape: tuple[int, int], target: int = 512) -> int:
    """Pixels per die so that the longer side is about ``target`` pixels (at least 1)."""
    return max(1, target // max(shape))


def wafer_picture(
    wafer: WaferMap, mask: LabelMask | None = None, target: int = 512, opacity: float = 0.85, colorblind: bool = False
) -> np.ndarray:
    cell = auto_cell(wafer.shape, target)
    return upscale(overlay_rgb(wafer, mask, opacity, colorblind), cell, gap=1 if cell >= 6 else 0)


def fail_pass_picture(dies: np.ndarray) -> np.ndarray:
    """High-contrast picture (fails dark on light) used for grids of many small maps."""
    lut = np.array([(255, 255, 255), (190, 210, 235), (200, 30, 30)], dtype=np.uint8)
    return lut[np.clip(dies, 0, 2)]


def fit_into(img: np.ndarray, size: int, background: tuple[int, int, int] = (255, 255, 255)) -> np.ndarray:
    """Upscale by an integer factor and centre on a ``size`` x ``size`` canvas (crisp, no blur)."""
    h, w = img.shape[:2]
    cell = max(1, size // max(h, w))
    big = upscale(img, cell)[:size, :size]
    canvas = np.empty((size, size, 3), dtype=np.uint8)
    canvas[:] = background
    oy, ox = (size - big.shape[0]) // 2, (size - big.shape[1]) // 2
    canvas[oy : oy + big.shape[0], ox : ox + big.shape[1]] = big
    return canvas


def save_png(img: np.ndarray, path: str | Path) -> Path:
    from PIL import Image

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    picture = Image.fromarray(np.ascontiguousarray(img))
    with atomic_open(out, "wb") as fh:  # an interrupted write leaves the previous picture whole
        picture.save(fh, format=Image.registered_extensions().get(out.suffix.lower(), "PNG"), optimize=False)
    return out
