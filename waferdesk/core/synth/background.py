"""Background fails: the scattered fails every real wafer shows, labelled ``random``.

Real WM-811K maps without a pattern ("none") fail 0-25 % of their dies (10th/50th/90th
percentile 6 / 15 / 22 %), nearly independently (a failing die has 1.11x the failing
neighbours that independence predicts, median) and more towards the rim (the outer 20 % of
the radius fails 1.7x as often as the inside, median). The defaults below reproduce those
numbers on the generator's none wafers (6 / 15 / 22 %, 1.11x, 1.66x; docs/ml.md says how
they were measured). Some wafers still get slowly varying (patchy) fails or small clumps of
2-4 dies, so the model does not learn that every clump is a particle.
"""

from __future__ import annotations

import numpy as np

from .geometry import Geometry, smooth_noise

# (probability, low rate, high rate): clean, light and heavy background, and "random" wafers
# whose scattered fails are dense enough to be a problem of their own (WM-811K "Random").
RATE_MIXTURE = ((0.05, 0.0, 0.03), (0.3, 0.03, 0.12), (0.65, 0.11, 0.24))
DENSE_RANGE = (0.33, 0.68)
PATCHY_P = 0.15  # share of ordinary (not dense) backgrounds that vary slowly across the wafer
CLUMPY_P = 0.4  # share of ordinary backgrounds with some 2-4 die clumps


def sample_rate(rng: np.random.Generator, dense: bool = False) -> float:
    if dense:
        return float(rng.uniform(*DENSE_RANGE))
    probs = np.array([m[0] for m in RATE_MIXTURE])
    lo, hi = RATE_MIXTURE[rng.choice(len(RATE_MIXTURE), p=probs / probs.sum())][1:]
    return float(rng.uniform(lo, hi))


def background_fails(geo: Geometry, rng: np.random.Generator, rate: float) -> np.ndarray:
    """Boolean fails at about ``rate`` of the dies: independent fails, clumps and a rim gradient."""
    h, w = geo.shape
    if rate <= 0:
        return np.zeros((h, w), dtype=bool)
    if rate < 0.25:  # ordinary background: clearly more fails at the rim (1.7x, see above)
        field = 1.0 + (rng.uniform(0.8, 4.0) if rng.random() < 0.9 else 0.0) * geo.r**8
    else:  # dense "random" wafers fail nearly as much inside as at the rim (real: 1.12x)
        field = 1.0 + (rng.uniform(0.0, 1.5) if rng.random() < 0.6 else 0.0) * geo.r**6
    if rate >= 0.25 or rng.random() < PATCHY_P:  # patchy: real dense-random wafers fail in blotches
        field *= 0.4 + 1.2 * smooth_noise(geo.shape, rng, int(rng.integers(2, 6)))
    field /= field[geo.on].mean() if geo.on.any() else 1.0
    if rate >= 0.3:
        clump_share = rng.uniform(0.0, 0.2)
    else:
        clump_share = rng.uniform(0.0, 0.2) if rng.random() < CLUMPY_P else 0.0
    p_single = np.clip(rate * (1 - clump_share) * field, 0, 0.95)
    fails = rng.random((h, w)) < p_single
    if clump_share > 0:
        # clump seeds grow into 2-4 die blobs or streaks along a row/column
        seeds = rng.random((h, w)) < rate * clump_share * field / 2.5
        grown = seeds.copy()
        for dr, dc in ((0, 1), (1, 0), (0, -1), (-1, 0)):
            take = rng.random((h, w)) < 0.4
            shifted = np.roll(seeds, (dr, dc), axis=(0, 1))
            grown |= shifted & take
        fails |= grown
    return fails & geo.on
