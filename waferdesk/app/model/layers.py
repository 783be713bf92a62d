"""The picture the wafer view shows, composed in numpy (one RGBA pixel per die).

Kept out of Qt so the PNG export, the benchmark and the tests draw exactly what the screen
shows. Three modes: the labels being edited, the model's mask, and the model's per-die
uncertainty as a heat map. Dies stay crisp because the view scales this image with
nearest-neighbour sampling only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ...core.taxonomy import IGNORE, Taxonomy, default_taxonomy
from ...core.wafer import FAIL, NO_DIE, PASS

MODES = ("labels", "prediction", "uncertainty")

# perceptually ordered dark-to-bright ramp (matplotlib's "inferno" at 9 stops)
_INFERNO = np.array(
    [
        (0, 0, 4),
        (31, 12, 72),
        (85, 15, 109),
        (136, 34, 106),
        (186, 54, 85),
        (227, 89, 51),
        (249, 140, 10),
        (249, 201, 50),
        (252, 255, 164),
    ],
    dtype=np.float32,
)


def heat_lut(n: int = 256) -> np.ndarray:
    """(n, 3) uint8 colour ramp for heat maps (uncertainty, lot fail rate)."""
    x = np.linspace(0, len(_INFERNO) - 1, n)
    lo = np.floor(x).astype(int)
    hi = np.minimum(lo + 1, len(_INFERNO) - 1)
    t = (x - lo)[:, None]
    return ((1 - t) * _INFERNO[lo] + t * _INFERNO[hi]).round().astype(np.uint8)


HEAT = heat_lut()


@dataclass
class LayerStyle:
    """How labels are drawn: opacity, visible classes, palette."""

    opacity: float = 0.85
    visible: np.ndarray = field(default_factory=lambda: np.ones(len(default_taxonomy()), dtype=bool))
    colorblind: bool = False
    transparent_no_die: bool = True  # on screen the view's background shows through

    def class_lut(self, taxonomy: Taxonomy | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(256, 3) float colours and (256,) float alpha per label value (0 alpha = not drawn)."""
        tax = taxonomy or default_taxonomy()
        rgb = np.zeros((256, 3), dtype=np.float32)
        alpha = np.zeros(256, dtype=np.float32)
        rgb[: len(tax)] = np.array(tax.palette(self.colorblind), dtype=np.float32)
        alpha[: len(tax)] = np.where(self.visible[: len(tax)], self.opacity, 0.0)
        return rgb, alpha


def die_rgba(dies: np.ndarray, style: LayerStyle, taxonomy: Taxonomy | None = None) -> np.ndarray:
    tax = taxonomy or default_taxonomy()
    lut = np.zeros((3, 4), dtype=np.uint8)
    for code, name in ((NO_DIE, "no_die"), (PASS, "pass"), (FAIL, "fail")):
        lut[code, :3] = tax.die_colors[name]
        lut[code, 3] = 255
    if style.transparent_no_die:
        lut[NO_DIE, 3] = 0
    return lut[np.clip(dies, 0, 2)]


def picture_lut(style: LayerStyle, taxonomy: Taxonomy | None = None) -> np.ndarray:
    """(3, 256, 4) uint8: the colour of a die with code ``d`` (0/1/2) carrying label ``l``.

    Every die's colour depends only on that pair, so a whole picture is one table lookup
    (about a millisecond for 300x300 dies) instead of per-pixel blending.
    """
    tax = taxonomy or default_taxonomy()
    base = die_rgba(np.arange(3, dtype=np.uint8), style, tax)  # (3, 4)
    rgb, alpha = style.class_lut(tax)
    lut = np.repeat(base[:, None, :], 256, axis=1).astype(np.float32)
    a = alpha[None, :, None]
    lut[:, :, :3] = (1 - a) * lut[:, :, :3] + a * rgb[None, :, :]
    return lut.round().astype(np.uint8)


def blend_labels(
    base: np.ndarray, labels: np.ndarray, style: LayerStyle, taxonomy: Taxonomy | None = None, where=None
) -> np.ndarray:
    """Blend class colours over ``base`` (RGBA uint8) where labels are set (in place; returns it)."""
    rgb, alpha = style.class_lut(taxonomy)
    hit = labels != IGNORE
    if where is not None:
        hit &= where
    if not hit.any():
        return base
    lab = labels[hit]
    a = alpha[lab][:, None]
    px = base[hit, :3].astype(np.float32)
    base[hit, :3] = ((1 - a) * px + a * rgb[lab]).round().astype(np.uint8)
    return base


def die_entropy(probs: np.ndarray) -> np.ndarray:
    """Per-die entropy of class probabilities (K, H, W), normalised to 0..1 by log K."""
    p = np.clip(np.asarray(probs, dtype=np.float32), 1e-7, 1.0)
    k = p.shape[0]
    return (-(p * np.log(p)).sum(axis=0) / np.log(k)).clip(0, 1)


def uncertainty_rgba(dies: np.ndarray, entropy: np.ndarray, style: LayerStyle, taxonomy=None) -> np.ndarray:
    """Heat map of the entropy on failing dies; pass dies dimmed for context."""
    img = die_rgba(dies, style, taxonomy)
    fail = dies == FAIL
    img[fail, :3] = HEAT[(entropy[fail] * 255).round().astype(np.int64)]
    on_pass = dies == PASS
    img[on_pass, :3] = (img[on_pass, :3].astype(np.float32) * 0.35).astype(np.uint8)
    return img


def compose(
    dies: np.ndarray,
    labels: np.ndarray | None,
    style: LayerStyle,
    mode: str = "labels",
    entropy: np.ndarray | None = None,
    taxonomy: Taxonomy | None = None,
) -> np.ndarray:
    """The (H, W, 4) uint8 picture of one wafer in ``mode``."""
    if mode == "uncertainty" and entropy is not None:
        return uncertainty_rgba(dies, entropy, style, taxonomy)
    if labels is None:
        return die_rgba(dies, style, taxonomy)
    return picture_lut(style, taxonomy)[np.minimum(dies, 2), labels]


def recompose_cells(
    img: np.ndarray,
    dies: np.ndarray,
    labels: np.ndarray,
    style: LayerStyle,
    rows: np.ndarray,
    cols: np.ndarray,
    taxonomy: Taxonomy | None = None,
) -> None:
    """Redraw only the given dies of a labels-mode picture (a brush stroke touches a few dies)."""
    if rows.size == 0:
        return
    img[rows, cols] = picture_lut(style, taxonomy)[np.minimum(dies[rows, cols], 2), labels[rows, cols]]


def top_classes(probs: np.ndarray, row: int, col: int, names: tuple[str, ...], k: int = 3) -> list[tuple[str, float]]:
    """The ``k`` most probable classes of one die, most probable first."""
    p = np.asarray(probs[:, row, col], dtype=np.float64)
    order = np.argsort(-p)[:k]
    return [(names[i], float(p[i])) for i in order if i < len(names)]
