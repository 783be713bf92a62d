"""Real WM-811K maps beside synthetic maps of the matching class, to judge the generator by eye.

One row per WM-811K label: N real maps of that label, then N synthetic maps forced to the
class the label corresponds to (mapping below, as in ``shared/data/README.md``). Both sides
are drawn the same way, fail/pass colours only (a mask overlay would give the synthetic side
away), each map scaled to the same tile. :func:`stats` gives the numbers behind the picture
(size and fail-rate quartiles per label) so a difference seen can also be measured.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .render import fail_pass_picture, fit_into
from .synth import SynthConfig, generate_record
from .wafer import WaferMap


@dataclass(frozen=True)
class SynthSpec:
    """How to ask the generator for the look of one WM-811K label."""

    classes: tuple[str, ...]
    modes: dict[str, str] = field(default_factory=dict)
    dense_random: bool = False

    def describe(self) -> str:
        parts = [f"{c}:{self.modes[c]}" if c in self.modes else c for c in self.classes]
        if self.dense_random:
            parts.append("dense random")
        return ", ".join(parts) or "no pattern"


LABEL_TO_SYNTH: dict[str, SynthSpec] = {
    "Center": SynthSpec(("center",)),
    "Donut": SynthSpec(("ring",)),
    "Edge-Loc": SynthSpec(("edge",), {"edge": "arc"}),
    "Edge-Ring": SynthSpec(("edge",), {"edge": "ring"}),
    "Loc": SynthSpec(("particle",)),
    "Scratch": SynthSpec(("scratch",)),
    "Random": SynthSpec((), dense_random=True),
    "Near-full": SynthSpec(("etching",), {"etching": "full"}),
    "none": SynthSpec(()),
}
LABELS = tuple(LABEL_TO_SYNTH)


def synthetic_for(label: str, seed: int, count: int, cfg: SynthConfig | None = None) -> list[WaferMap]:
    """``count`` synthetic maps with the look of ``label`` (deterministic in ``seed``)."""
    spec = LABEL_TO_SYNTH[label]
    row = LABELS.index(label)
    return [
        generate_record(
            seed,
            row * 100_000 + i,
            cfg,
            classes=list(spec.classes),
            modes=dict(spec.modes),
            dense_random=spec.dense_random,
        ).wafer
        for i in range(count)
    ]


def pick_real(real: Sequence[WaferMap], label: str, count: int, seed: int) -> list[WaferMap]:
    """``count`` maps with ``label`` drawn at random (fewer when the data has fewer)."""
    pool = [w for w in real if w.label == label]
    if len(pool) <= count:
        return pool
    rng = np.random.default_rng([seed, LABELS.index(label)])
    return [pool[i] for i in sorted(rng.choice(len(pool), size=count, replace=False))]


def tile(dies: np.ndarray, size: int) -> np.ndarray:
    """A map as a ``size`` x ``size`` picture: integer upscaling, or even sampling when too big."""
    h, w = dies.shape
    if max(h, w) > size:
        scale = size / max(h, w)
        rows = (np.arange(max(1, int(h * scale))) / scale).astype(int)
        cols = (np.arange(max(1, int(w * scale))) / scale).astype(int)
        dies = dies[np.ix_(rows, cols)]
    return fit_into(fail_pass_picture(dies), size)


def _quartiles(values: Sequence[float]) -> tuple[float, float, float]:
    if not values:
        return (float("nan"),) * 3  # type: ignore[return-value]
    q = np.percentile(np.asarray(values, dtype=float), [25, 50, 75])
    return (float(q[0]), float(q[1]), float(q[2]))


def stats(real: Sequence[WaferMap], synth: Sequence[WaferMap]) -> dict[str, tuple[float, float, float]]:
    """Quartiles of dies across and fail rate, real vs synthetic."""
    return {
        "real_across": _quartiles([max(w.shape) for w in real]),
        "synth_across": _quartiles([max(w.shape) for w in synth]),
        "real_fail": _quartiles([w.fail_rate for w in real]),
        "synth_fail": _quartiles([w.fail_rate for w in synth]),
    }


def realism_picture(
    real: Sequence[WaferMap], per_label: int = 6, seed: int = 0, tile_px: int = 96, cfg: SynthConfig | None = None
) -> np.ndarray:
    """The side-by-side grid as an (H, W, 3) uint8 picture with row labels and column headers."""
    from PIL import Image, ImageDraw

    gap, group_gap, label_w, header_h, margin = 4, 28, 150, 30, 10
    group_w = per_label * tile_px + (per_label - 1) * gap
    width = margin + label_w + 2 * group_w + group_gap + margin
    height = margin + header_h + len(LABELS) * (tile_px + gap) + margin
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    x_real = margin + label_w
    x_syn = x_real + group_w + group_gap
    draw.text((x_real, margin + 8), "real (WM-811K)", fill=(0, 0, 0))
    draw.text((x_syn, margin + 8), "synthetic (waferdesk synth)", fill=(0, 0, 0))
    for row, label in enumerate(LABELS):
        y = margin + header_h + row * (tile_px + gap)
        reals = pick_real(real, label, per_label, seed)
        synths = synthetic_for(label, seed, per_label, cfg)
        draw.text((margin, y + tile_px // 2 - 14), label, fill=(0, 0, 0))
        draw.text((margin, y + tile_px // 2 + 2), f"-> {LABEL_TO_SYNTH[label].describe()}", fill=(90, 90, 90))
        if not reals:
            draw.text((x_real, y + tile_px // 2 - 6), "(no real maps with this label)", fill=(150, 0, 0))
        for i, w in enumerate(reals):
            canvas.paste(Image.fromarray(tile(w.dies, tile_px)), (x_real + i * (tile_px + gap), y))
        for i, w in enumerate(synths):
            canvas.paste(Image.fromarray(tile(w.dies, tile_px)), (x_syn + i * (tile_px + gap), y))
    return np.asarray(canvas)
