"""Background fails: the scattered fails every real wafer shows, labelled ``random``.

Real WM-811K maps without a pattern ("none") fail 0-25 % of their dies, not uniformly: small
clumps of 2-4 dies, short streaks and somewhat more fails towards the rim. A generator that
only sprinkled independent fails would teach the model that every clump is a particle.
"""

from __future__ import annotations

import numpy as np

from .geometry import Geometry, smooth_noise

# (probability, low rate, high rate): clean, light and heavy background, and "random" wafers
# whose scattered fails are dense enough to be a problem of their own (WM-811K "Random").
RATE_MIXTURE = ((0.05, 0.0, 0.03), (0.35, 0.03, 0.12), (0.6, 0.1, 0.25))
DENSE_RANGE = (0.33, 0.68)


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
    rim_gain = rng.uniform(0.0, 1.5) if rng.random() < 0.6 else 0.0
    field = 1.0 + rim_gain * geo.r**6
    if rate >= 0.25 or rng.random() < 0.3:  # patchy: real dense-random wafers fail in blotches
        field *= 0.4 + 1.2 * smooth_noise(geo.shape, rng, int(rng.integers(2, 6)))
    field /= field[geo.on].mean() if geo.on.any() else 1.0
    clump_share = rng.uniform(0.0, 0.3) if rate < 0.3 else rng.uniform(0.0, 0.2)
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
