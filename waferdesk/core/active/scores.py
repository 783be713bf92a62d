"""Uncertainty scores of one wafer from the model's per-die probabilities.

All scores are computed over FAILING dies only (the only dies that carry a label), so a
wafer with a few ambiguous fails is not drowned by thousands of confident pass dies.
Entropies are "higher = more uncertain"; margins (the gap between the two likeliest classes)
are "lower = more uncertain". The engine (:mod:`waferdesk.core.inference`) computes these for
every prediction with the same functions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ..wafer import FAIL

_EPS = 1e-12


def _fail_probs(probs: np.ndarray, dies: np.ndarray) -> np.ndarray:
    """(n_fail, K) probabilities of the failing dies from (K, H, W)."""
    sel = dies == FAIL
    return np.moveaxis(probs, 0, -1)[sel].astype(np.float64)


def entropy(p: np.ndarray, axis: int = -1) -> np.ndarray:
    """Shannon entropy normalised to [0, 1] by log(K)."""
    k = p.shape[axis]
    return -(p * np.log(p + _EPS)).sum(axis=axis) / np.log(k)


UNCERTAINTY_KEYS = ("entropy_mean", "entropy_max", "entropy_topk_mean", "margin_mean", "margin_min")
TOPK_SHARE = 0.1
"""``entropy_topk_mean`` averages the entropy of the most uncertain 10 % of failing dies (at
least one): a wafer with one confused pattern among many clear fails still scores high."""


def top2(p: np.ndarray, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Largest and second-largest value along ``axis`` (equal when tied), without a sort."""
    pk = np.moveaxis(p, axis, 0)
    t1 = np.full(pk.shape[1:], -np.inf, dtype=p.dtype)
    t2 = t1.copy()
    for k in range(pk.shape[0]):
        np.maximum(t2, np.minimum(pk[k], t1), out=t2)
        np.maximum(t1, pk[k], out=t1)
    return t1, t2


def scores_from_entropy_margin(ent: np.ndarray, margin: np.ndarray) -> dict[str, float]:
    """Uncertainty scores from the entropies and top-2 margins of one wafer's failing dies."""
    n = ent.size
    if n == 0:
        return dict.fromkeys(UNCERTAINTY_KEYS, 0.0)
    m = max(1, math.ceil(n * TOPK_SHARE))
    topk = np.partition(ent, n - m)[n - m :]
    return {
        "entropy_mean": float(ent.mean()),
        "entropy_max": float(ent.max()),
        "entropy_topk_mean": float(topk.mean()),
        "margin_mean": float(margin.mean()),
        "margin_min": float(margin.min()),
    }


def uncertainty_scores(probs: np.ndarray, fail: np.ndarray) -> dict[str, float]:
    """Entropy (normalised to 0..1 by log K) and top-2 margin over the failing dies.

    ``probs`` (K, H, W); ``fail`` is a boolean (H, W) mask of failing dies, or a die grid
    (0/1/2 codes) from which it is taken. A wafer with no failing die has nothing to be
    uncertain about: all scores are 0 (margins too, so that every score sorts the same way).
    """
    sel = fail if fail.dtype == bool else fail == FAIL
    k = probs.shape[0]
    p = probs[:, sel]  # (K, n)
    if p.shape[1] == 0:
        return dict.fromkeys(UNCERTAINTY_KEYS, 0.0)
    ent = -(p * np.log(np.maximum(p, 1e-12))).sum(axis=0) / math.log(k)
    t1, t2 = top2(p)
    return scores_from_entropy_margin(ent, t1 - t2)


def tta_disagreement(aligned_probs: Sequence[np.ndarray], dies: np.ndarray) -> dict[str, float]:
    """Disagreement across test-time symmetries (a cheap ensemble).

    ``aligned_probs`` holds one (K, H, W) array per symmetry, each already mapped back to the
    original orientation. Returns the mutual information between prediction and symmetry
    (BALD-style: entropy of the mean minus mean entropy) and the vote disagreement (share of
    (die, symmetry) pairs whose argmax differs from the consensus), both over failing dies.
    """
    stack = np.stack([_fail_probs(p, dies) for p in aligned_probs])  # (T, n_fail, K)
    if stack.shape[1] == 0:
        return {"tta_mutual_info": 0.0, "tta_vote_disagreement": 0.0}
    mean = stack.mean(axis=0)
    mi = entropy(mean) - entropy(stack).mean(axis=0)
    votes = stack.argmax(axis=2)
    consensus = mean.argmax(axis=1)
    return {
        "tta_mutual_info": float(np.clip(mi, 0, None).mean()),
        "tta_vote_disagreement": float((votes != consensus[None, :]).mean()),
    }


# The 8 symmetries of the square (dihedral group D4) acting on a (..., H, W) grid, with their
# inverses, so that predictions on a transformed wafer can be mapped back die for die.
def dihedral(grid: np.ndarray, k: int) -> np.ndarray:
    """Symmetry ``k`` in 0..7: rotate by 90*(k % 4) degrees, then transpose when k >= 4."""
    out = np.rot90(grid, k % 4, axes=(-2, -1))
    if k >= 4:
        out = np.swapaxes(out, -2, -1)
    return np.ascontiguousarray(out)


def dihedral_inverse(grid: np.ndarray, k: int) -> np.ndarray:
    out = np.swapaxes(grid, -2, -1) if k >= 4 else grid
    return np.ascontiguousarray(np.rot90(out, -(k % 4), axes=(-2, -1)))
