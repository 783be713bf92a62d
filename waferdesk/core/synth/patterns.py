"""One parametric generator per defect class.

Each returns a :class:`Pattern`: the per-die probability that the pattern makes the die fail,
and its *region*, the dies the pattern owns. Ground truth labels a failing die with the class
of the region it lies in, so a background fail that lands inside a scratch is labelled
scratch: labels stay a function of what a person (or the model) can see. ``mode`` selects a
sub-type (e.g. a full edge ring or an edge arc) so pictures and tests can ask for one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .geometry import Geometry, smooth_noise


@dataclass
class Pattern:
    name: str
    prob: np.ndarray  # float32 (H, W) in [0, 1]
    region: np.ndarray  # bool (H, W)
    mode: str = ""


def _angle_diff(a: np.ndarray | float, b: float) -> np.ndarray:
    return np.abs(np.angle(np.exp(1j * (np.asarray(a) - b))))


def _density(rng: np.random.Generator, background: float, lo: float = 0.6, hi: float = 0.97) -> float:
    """Fail probability inside a pattern: high, and clearly above the background rate."""
    return float(np.clip(max(rng.uniform(lo, hi), background + 0.35), 0.0, 0.98))


def _wobble(geo: Geometry, rng: np.random.Generator, amp: float) -> np.ndarray:
    """A smooth random radial distortion (a few low angular harmonics) to roughen outlines."""
    th = geo.theta
    out = np.zeros_like(th)
    for k in (2, 3, 5):
        out += rng.normal(0, amp / k) * np.cos(k * th + rng.uniform(0, 2 * np.pi))
    return out


def edge(geo: Geometry, rng: np.random.Generator, background: float, mode: str | None = None) -> Pattern:
    mode = mode or ("ring" if rng.random() < 0.5 else "arc")
    rim = geo.rim_layer()
    across = geo.dies_across
    p_in = _density(rng, background, 0.65, 0.98)
    th = geo.theta
    if mode == "ring":  # Edge-Ring: the outermost dies all round, 1-3 deep, maybe with gaps
        depth = 1 + int(rng.random() < 0.35) + int(across > 60 and rng.random() < 0.5) * int(rng.integers(1, 3))
        region = (rim >= 0) & (rim < depth)
        if rng.random() < 0.4:  # a gap or two in the ring
            for _ in range(int(rng.integers(1, 3))):
                region &= _angle_diff(th, rng.uniform(-np.pi, np.pi)) > rng.uniform(0.2, 0.9)
        prob = np.where(region, p_in * np.where(rim == 0, 1.0, 0.8), 0.0)
    else:  # Edge-Loc: an arc at the rim, deepest in its middle
        centre = rng.uniform(-np.pi, np.pi)
        half = rng.uniform(np.radians(15), np.radians(80))
        d = _angle_diff(th, centre)
        max_depth = max(1.2, rng.uniform(0.03, 0.12) * across)
        depth = max_depth * np.clip(1 - (d / half) ** 2, 0, 1) + 0.6
        region = (rim >= 0) & (d < half) & (rim < depth)
        fade = np.clip(1.15 - 0.5 * rim / np.maximum(depth, 1), 0.4, 1.0)
        prob = np.where(region, p_in * fade, 0.0)
    return Pattern("edge", prob.astype(np.float32), region, mode)


def center(geo: Geometry, rng: np.random.Generator, background: float, mode: str | None = None) -> Pattern:
    cx, cy = rng.normal(0, 0.05, size=2)
    rc = rng.uniform(0.2, 0.55)
    stretch = rng.uniform(0.85, 1.18)
    d = np.hypot((geo.x - cx) * stretch, (geo.y - cy) / stretch) / rc + _wobble(geo, rng, 0.12)
    p_in = _density(rng, background, 0.7, 0.98)
    core = rng.uniform(0.3, 0.6)  # a dense core, then a halo of fails thinning outwards
    region = geo.on & (d < 1.0)
    halo = np.clip(1 - (d - core) / (1 - core), 0.25, 1.0)
    prob = np.where(region, p_in * np.where(d < core, 1.0, halo), 0.0)
    return Pattern("center", prob.astype(np.float32), region, mode or "blob")


def ring(geo: Geometry, rng: np.random.Generator, background: float, mode: str | None = None) -> Pattern:
    r0 = rng.uniform(0.35, 0.68)
    width = rng.uniform(0.12, 0.32)
    r = geo.r + _wobble(geo, rng, 0.03)
    region = geo.on & (np.abs(r - r0) < width / 2)
    mode = mode or ("full" if rng.random() < 0.55 else "partial")
    if mode == "partial":  # donuts are often open on one side
        region &= _angle_diff(geo.theta, rng.uniform(-np.pi, np.pi)) < rng.uniform(np.radians(100), np.radians(160))
    p_in = _density(rng, background, 0.6, 0.95)
    prob = np.where(region, p_in, 0.0)
    return Pattern("ring", prob.astype(np.float32), region, mode)


def _scratch_path(rng: np.random.Generator, mode: str) -> np.ndarray:
    """Points (n, 2) of a scratch in normalised coordinates: one straight stroke, or a chain of
    1-3 gently curved strokes (real scratches are long, often several joined segments)."""
    rho = np.sqrt(rng.uniform(0, 0.36))
    phi = rng.uniform(-np.pi, np.pi)
    start = np.array([rho * np.cos(phi), rho * np.sin(phi)])
    ang = rng.uniform(0, 2 * np.pi)
    total = rng.uniform(0.6, 1.9)
    n_seg = 1 if mode == "straight" else int(rng.integers(1, 4))
    pieces = []
    for k in range(n_seg):
        length = total / n_seg
        d = np.array([np.cos(ang), np.sin(ang)])
        end = start + length * d
        mid = (start + end) / 2
        if mode != "straight":
            mid = mid + np.array([-d[1], d[0]]) * rng.uniform(-0.3, 0.3) * length
        t = np.linspace(0, 1, 400)[:, None]
        pieces.append((1 - t) ** 2 * start + 2 * (1 - t) * t * mid + t**2 * end)
        if k == 0 and rng.random() < 0.5:  # grow the other way from the start point too
            ang = ang + np.pi
            start = pieces[0][0]
        else:
            start = end
        ang += rng.uniform(-0.5, 0.5)
    return np.concatenate(pieces)


def scratch(geo: Geometry, rng: np.random.Generator, background: float, mode: str | None = None) -> Pattern:
    """A thin line of dies: a rasterised path, one or two dies wide, possibly broken."""
    h, w = geo.shape
    mode = mode or ("curved" if rng.random() < 0.6 else "straight")
    pts = _scratch_path(rng, mode)
    # normalised -> grid: the geometry's mapping is linear, die_x per column from column 0
    col = (pts[:, 0] - geo.x[0, 0]) / geo.die_x
    row = (pts[:, 1] - geo.y[0, 0]) / geo.die_y
    n = len(pts)
    keep = np.ones(n, dtype=bool)
    if rng.random() < 0.5:  # broken line: drop a few stretches
        t = np.linspace(0, 1, n)
        for _ in range(int(rng.integers(1, 4))):
            a = rng.uniform(0.1, 0.9)
            keep &= ~((t > a) & (t < a + rng.uniform(0.02, 0.07)))
    ci, ri = np.round(col[keep]).astype(int), np.round(row[keep]).astype(int)
    region = np.zeros((h, w), dtype=bool)
    ok = (ri >= 0) & (ri < h) & (ci >= 0) & (ci < w)
    region[ri[ok], ci[ok]] = True
    if rng.random() < 0.25:  # a two-die-wide scratch
        step = np.diff(pts[[0, -1]], axis=0)[0]
        dr, dc = (0, 1) if abs(step[1]) > abs(step[0]) else (1, 0)
        r2, c2 = ri[ok] + dr, ci[ok] + dc
        ok2 = (r2 < h) & (c2 < w)
        region[r2[ok2], c2[ok2]] = True
    region &= geo.on
    p_in = _density(rng, background, 0.75, 0.98)
    prob = np.where(region, p_in, 0.0)
    return Pattern("scratch", prob.astype(np.float32), region, mode)


def particle(geo: Geometry, rng: np.random.Generator, background: float, mode: str | None = None) -> Pattern:
    """A compact cluster anywhere on the wafer, a few dies to a tenth of the wafer across."""
    across = geo.dies_across
    rho = np.sqrt(rng.uniform(0.0, 0.8))
    phi = rng.uniform(-np.pi, np.pi)
    cx, cy = rho * np.cos(phi), rho * np.sin(phi)
    radius_dies = rng.uniform(1.5, max(3.0, 0.16 * across))
    radius = radius_dies * (geo.die_x + geo.die_y) / 2
    ratio = np.sqrt(rng.uniform(1.0, 2.0))
    rot = rng.uniform(0, np.pi)
    u = (geo.x - cx) * np.cos(rot) + (geo.y - cy) * np.sin(rot)
    v = -(geo.x - cx) * np.sin(rot) + (geo.y - cy) * np.cos(rot)
    d = np.hypot(u / ratio, v * ratio) / radius
    d = d + 0.15 * rng.standard_normal(d.shape) * (d > 0.6)
    region = geo.on & (d < 1.0)
    p_in = _density(rng, background, 0.75, 0.98)
    prob = np.where(region, p_in * np.clip(1.25 - 0.4 * d, 0, 1), 0.0)
    return Pattern("particle", prob.astype(np.float32), region, mode or "cluster")


def lithography(geo: Geometry, rng: np.random.Generator, background: float, mode: str | None = None) -> Pattern:
    """Fails at the same die positions in every reticle shot (or in a column/row of shots)."""
    h, w = geo.shape
    across = geo.dies_across
    hi = 4 if across < 35 else (6 if across < 80 else 9)
    sx, sy = int(rng.integers(2, hi + 1)), int(rng.integers(2, hi + 1))
    ox, oy = int(rng.integers(0, sx)), int(rng.integers(0, sy))
    rows, cols = np.mgrid[0:h, 0:w]
    shot_c, shot_r = (cols + ox) // sx, (rows + oy) // sy
    in_c, in_r = (cols + ox) % sx, (rows + oy) % sy
    n_pos = int(rng.integers(1, 3 if sx * sy < 9 else 4))
    pos = np.zeros((sy, sx), dtype=bool)
    flat = rng.choice(sx * sy, size=n_pos, replace=False)
    pos.flat[flat] = True
    if rng.random() < 0.25 and sx >= 3:  # a whole die column of each shot (a reticle defect line)
        pos[:, int(rng.integers(0, sx))] = True
    region = pos[in_r, in_c] & geo.on
    mode = mode or str(rng.choice(["all", "column", "row", "half"], p=[0.5, 0.2, 0.15, 0.15]))
    if mode == "column":
        sel = np.unique(shot_c[geo.on])
        keep = rng.choice(sel, size=max(1, min(len(sel), int(rng.integers(1, 3)))), replace=False)
        region &= np.isin(shot_c, keep)
    elif mode == "row":
        sel = np.unique(shot_r[geo.on])
        keep = rng.choice(sel, size=max(1, min(len(sel), int(rng.integers(1, 3)))), replace=False)
        region &= np.isin(shot_r, keep)
    elif mode == "half":
        a = rng.uniform(0, 2 * np.pi)
        region &= (geo.x * np.cos(a) + geo.y * np.sin(a)) > rng.uniform(-0.4, 0.2)
    p_in = _density(rng, background, 0.8, 0.99)
    prob = np.where(region, p_in, 0.0)
    return Pattern("lithography", prob.astype(np.float32), region, mode)


def etching(geo: Geometry, rng: np.random.Generator, background: float, mode: str | None = None) -> Pattern:
    """A broad smooth non-uniformity: one side or a sector failing with a gradient, or near-full."""
    mode = mode or str(rng.choice(["side", "sector", "full"], p=[0.5, 0.3, 0.2]))
    if mode == "full":  # WM-811K "Near-full": nearly everything fails, a gentle gradient
        a = rng.uniform(0, 2 * np.pi)
        proj = geo.x * np.cos(a) + geo.y * np.sin(a)
        base = rng.uniform(0.8, 0.97)
        prob = base + rng.uniform(0, 0.12) * proj
        # surviving dies come in clumps, often on one side, not as salt-and-pepper
        holes = smooth_noise(geo.shape, rng, int(rng.integers(2, 5)))
        prob = np.clip(prob - np.clip(holes - rng.uniform(0.65, 0.85), 0, None) * 3.0, 0.05, 0.995)
        region = geo.on.copy()
    elif mode == "side":
        a = rng.uniform(0, 2 * np.pi)
        proj = geo.x * np.cos(a) + geo.y * np.sin(a)
        t = rng.uniform(-0.3, 0.45)
        s = rng.uniform(0.08, 0.2)
        prob = rng.uniform(0.7, 0.97) / (1 + np.exp(-(proj - t) / s))
        region = geo.on & (proj > t - 1.2 * s)
    else:
        c = rng.uniform(-np.pi, np.pi)
        half = rng.uniform(np.radians(30), np.radians(80))
        d = _angle_diff(geo.theta, c)
        r_in = rng.uniform(0.0, 0.4)
        prob = rng.uniform(0.7, 0.97) * np.clip(1.2 - d / half, 0, 1) * np.clip((geo.r - r_in) / 0.25 + 0.3, 0, 1)
        region = geo.on & (d < half) & (geo.r > r_in - 0.05)
    prob = np.where(region, np.maximum(prob, background), 0.0)
    return Pattern("etching", prob.astype(np.float32), region & geo.on, mode)


GENERATORS: dict[str, Callable[..., Pattern]] = {
    "edge": edge,
    "center": center,
    "ring": ring,
    "scratch": scratch,
    "particle": particle,
    "lithography": lithography,
    "etching": etching,
}

# Which region wins where two overlap: thin/local patterns are drawn on top of broad ones.
PRIORITY = ("etching", "edge", "ring", "center", "lithography", "particle", "scratch")
