"""Diversity sampling on model embeddings: k-center greedy (core-set, Sener & Savarese 2018).

Each pick is the pool point farthest from everything already chosen or already labelled, so
a batch covers the embedding space instead of piling onto one confusing pattern.
"""

from __future__ import annotations

import numpy as np


def _sq_dists(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    aa = (a * a).sum(axis=1)[:, None]
    bb = (b * b).sum(axis=1)[None, :]
    return np.maximum(aa + bb - 2.0 * a @ b.T, 0.0)


def min_distance_to(points: np.ndarray, centers: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """Euclidean distance of each point to its nearest center (inf when there are none)."""
    if len(centers) == 0:
        return np.full(len(points), np.inf)
    out = np.empty(len(points))
    for s in range(0, len(centers), chunk):
        d = _sq_dists(points, centers[s : s + chunk]).min(axis=1)
        out = d if s == 0 else np.minimum(out, d)
    return np.sqrt(out)


def k_center_greedy(
    embeddings: np.ndarray,
    k: int,
    labelled: np.ndarray | None = None,
    candidates: np.ndarray | None = None,
    seed: int = 0,
) -> list[int]:
    """Indices (into ``embeddings``) of ``k`` points picked by k-center greedy.

    ``labelled`` are embeddings of already-labelled wafers (they count as centers from the
    start); ``candidates`` optionally restricts the picks to a subset of indices. With no
    labelled set the first pick is the candidate farthest from the candidates' mean (a
    deterministic start); ties break by index; ``seed`` only breaks exact-distance ties.
    """
    x = np.asarray(embeddings, dtype=np.float64)
    idx = np.arange(len(x)) if candidates is None else np.asarray(candidates, dtype=np.int64)
    k = min(k, len(idx))
    if k <= 0:
        return []
    pts = x[idx]
    if labelled is not None and len(labelled):
        dist = min_distance_to(pts, np.asarray(labelled, dtype=np.float64))
    else:
        dist = np.sqrt(_sq_dists(pts, pts.mean(axis=0, keepdims=True))[:, 0]) + 1e-9
        dist = np.where(np.isfinite(dist), dist, 0.0)
    jitter = np.random.default_rng(seed).random(len(pts)) * 1e-12
    chosen: list[int] = []
    for _ in range(k):
        j = int(np.argmax(dist + jitter))
        chosen.append(int(idx[j]))
        dist = np.minimum(dist, np.sqrt(_sq_dists(pts, pts[j : j + 1])[:, 0]))
        dist[j] = -1.0
    return chosen
