"""Uncertainty scores of one wafer from the model's per-die probabilities.

All scores are computed over FAILING dies only (the only dies that carry a label), so a
wafer with a few ambiguous fails is not drowned by thousands of confident pass dies.
Higher means "more worth labelling" for every score returned by :func:`uncertainty_scores`
(margins are reported both raw and as ``1 - margin``).
"""

from __future__ import annotations

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


def uncertainty_scores(probs: np.ndarray, dies: np.ndarray, top_k: float = 0.1) -> dict[str, float]:
    """Entropy (mean, max, mean of the top ``top_k`` share) and margin (mean, min) over fails.

    ``margin`` is the gap between the two most likely classes (small = uncertain);
    ``least_margin`` = 1 - mean margin so that higher is more uncertain like the others.
    """
    p = _fail_probs(probs, dies)
    if p.shape[0] == 0:
        return {
            "entropy_mean": 0.0,
            "entropy_max": 0.0,
            "entropy_topk_mean": 0.0,
            "margin_mean": 1.0,
            "margin_min": 1.0,
            "least_margin": 0.0,
        }
    h = entropy(p)
    k = max(1, int(np.ceil(top_k * h.size)))
    top2 = np.sort(p, axis=1)[:, -2:]
    margin = top2[:, 1] - top2[:, 0]
    return {
        "entropy_mean": float(h.mean()),
        "entropy_max": float(h.max()),
        "entropy_topk_mean": float(np.sort(h)[-k:].mean()),
        "margin_mean": float(margin.mean()),
        "margin_min": float(margin.min()),
        "least_margin": float(1.0 - margin.mean()),
    }


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
