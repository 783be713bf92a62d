"""Wafer geometry for the generator: which grid cells hold dies, and where they sit.

Coordinates are normalised so that the wafer rim is the unit circle whatever the grid size
or die aspect ratio: ``x`` to the right, ``y`` downwards, ``r`` the radius, ``theta`` the
angle. Patterns are drawn in these coordinates, so that "a ring at half the radius" means
the same on a 20-die and a 200-die wafer, while widths that are physical in dies (a scratch
one die wide, the outermost ring of dies) use ``die_x`` / ``die_y`` and :meth:`rim_layer`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

NOTCH_ANGLE = {"right": 0.0, "down": np.pi / 2, "left": np.pi, "up": -np.pi / 2}

# Diameter (dies across) bins and their weights: real WM-811K maps are mostly 25-30 dies
# across with a long tail to ~210; the issue asks for 15..200.
SIZE_BINS = ((15, 24), (24, 32), (32, 48), (48, 72), (72, 120), (120, 200))
SIZE_WEIGHTS = (0.04, 0.55, 0.18, 0.13, 0.07, 0.03)


@dataclass
class Geometry:
    on: np.ndarray  # bool (H, W): a die sits here
    x: np.ndarray  # float32 (H, W) normalised die-centre coordinates
    y: np.ndarray
    die_x: float  # die width in normalised units (2 / dies across)
    die_y: float
    notch: str
    die_pitch: tuple[float, float]
    _rim: np.ndarray | None = field(default=None, repr=False)

    @property
    def shape(self) -> tuple[int, int]:
        return self.on.shape  # type: ignore[return-value]

    @property
    def r(self) -> np.ndarray:
        return np.hypot(self.x, self.y)

    @property
    def theta(self) -> np.ndarray:
        return np.arctan2(self.y, self.x)

    @property
    def dies_across(self) -> float:
        return 2.0 / self.die_x

    def rim_layer(self, max_layers: int = 64) -> np.ndarray:
        """Layers of dies from the rim: 0 = outermost on-wafer dies, -1 off the wafer.

        Computed by repeated 4-neighbour erosion of the on-wafer mask, so the outermost ring is
        exactly the dies a prober sees at the edge, jagged steps included.
        """
        if self._rim is None:
            layer = np.full(self.on.shape, max_layers, dtype=np.int16)
            layer[~self.on] = -1
            cur = self.on.copy()
            for k in range(max_layers):
                if not cur.any():
                    break
                p = np.pad(cur, 1, constant_values=False)
                inner = cur & p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:]
                layer[cur & ~inner] = k
                cur = inner
            self._rim = layer
        return self._rim


def sample_diameter(rng: np.random.Generator, size_range: tuple[int, int]) -> float:
    lo, hi = size_range
    bins = [(max(a, lo), min(b, hi)) for a, b in SIZE_BINS]
    weights = np.array([w if b > a else 0.0 for (a, b), w in zip(bins, SIZE_WEIGHTS, strict=True)])
    if weights.sum() == 0:
        return float(rng.uniform(lo, hi))
    a, b = bins[rng.choice(len(bins), p=weights / weights.sum())]
    return float(rng.uniform(a, b))


def make_geometry(rng: np.random.Generator, size_range: tuple[int, int] = (15, 200)) -> Geometry:
    """A random wafer outline: size, die aspect, edge exclusion, inclusion rule and notch."""
    dx_dies = sample_diameter(rng, size_range)  # dies across, horizontally
    # most real maps are within 10 % of square; a minority have clearly non-square dies
    aspect = float(np.exp(rng.uniform(np.log(0.93), np.log(1.07))))
    if rng.random() < 0.2:
        aspect = float(np.exp(rng.uniform(np.log(0.72), np.log(1.38))))
    dy_dies = float(np.clip(dx_dies / aspect, size_range[0] * 0.8, size_range[1] * 1.05))
    excl = rng.uniform(0.0, 0.035)
    full_die = rng.random() < 0.6  # a die counts only when all of it lies inside the usable area
    w = int(np.ceil(dx_dies)) + 2
    h = int(np.ceil(dy_dies)) + 2
    cx = w / 2 + rng.uniform(-0.5, 0.5)
    cy = h / 2 + rng.uniform(-0.5, 0.5)
    cols = (np.arange(w, dtype=np.float32) + 0.5 - cx) / (dx_dies / 2)
    rows = (np.arange(h, dtype=np.float32) + 0.5 - cy) / (dy_dies / 2)
    x, y = np.meshgrid(cols, rows)
    die_x, die_y = 2.0 / dx_dies, 2.0 / dy_dies
    limit = 1.0 - excl
    if full_die:
        reach = np.hypot(np.abs(x) + die_x / 2, np.abs(y) + die_y / 2)
    else:
        reach = np.hypot(x, y)
    on = reach <= limit
    notch = ("down", "up", "left", "right")[rng.choice(4, p=(0.55, 0.15, 0.15, 0.15))]
    if rng.random() < 0.3:  # the notch/flat takes a die or two off the rim
        ang = NOTCH_ANGLE[notch]
        d = np.abs(np.angle(np.exp(1j * (np.arctan2(y, x) - ang))))
        width = rng.uniform(1.0, 2.5) * max(die_x, die_y)
        on &= ~((d < width) & (np.hypot(x, y) > limit - 1.2 * max(die_x, die_y)))
    # crop to the dies plus a margin of 0 or 1 empty cells, as testers' maps come
    rr, cc = np.nonzero(on)
    m = int(rng.integers(0, 2))
    r0, r1 = max(rr.min() - m, 0), min(rr.max() + m + 1, h)
    c0, c1 = max(cc.min() - m, 0), min(cc.max() + m + 1, w)
    pitch_x = float(rng.uniform(2.0, 12.0))
    return Geometry(
        on=on[r0:r1, c0:c1].copy(),
        x=x[r0:r1, c0:c1].copy(),
        y=y[r0:r1, c0:c1].copy(),
        die_x=die_x,
        die_y=die_y,
        notch=notch,
        die_pitch=(round(pitch_x, 3), round(pitch_x * aspect, 3)),
    )


def smooth_noise(shape: tuple[int, int], rng: np.random.Generator, cells: int = 4) -> np.ndarray:
    """A smooth random field in [0, 1]: uniform noise on a coarse grid, bilinearly interpolated.

    Used for what varies slowly across a real wafer: patchy background fails, the clumps of
    surviving dies on a near-full wafer.
    """
    h, w = shape
    coarse = rng.random((cells + 1, cells + 1)).astype(np.float32)
    ys = np.linspace(0, cells, h, dtype=np.float32)
    xs = np.linspace(0, cells, w, dtype=np.float32)
    y0 = np.minimum(ys.astype(int), cells - 1)
    x0 = np.minimum(xs.astype(int), cells - 1)
    fy = (ys - y0)[:, None]
    fx = (xs - x0)[None, :]
    a = coarse[y0][:, x0]
    b = coarse[y0][:, x0 + 1]
    c = coarse[y0 + 1][:, x0]
    d = coarse[y0 + 1][:, x0 + 1]
    return (a * (1 - fy) * (1 - fx) + b * (1 - fy) * fx + c * fy * (1 - fx) + d * fy * fx).astype(np.float32)
