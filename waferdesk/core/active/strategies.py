"""Query strategies: which unlabelled wafers to label next.

- ``random``: a seeded shuffle, the baseline every other strategy must beat.
- ``uncertainty``: the highest uncertainty score first.
- ``diversity``: k-center greedy on the embeddings (labelled wafers count as covered).
- ``hybrid``: diversity among the most uncertain: take the ``pool_factor`` x batch most
  uncertain candidates, then k-center greedy inside them, so a batch is both informative and
  not ten copies of the same hard pattern.
All are deterministic for a given seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .diversity import k_center_greedy

STRATEGIES = ("random", "uncertainty", "diversity", "hybrid")


@dataclass(frozen=True)
class QueryResult:
    indices: list[int]  # into the pool arrays, in pick order
    scores: list[float]  # the uncertainty score of each pick (NaN when not used)


def select(
    strategy: str,
    batch_size: int,
    uncertainty: np.ndarray | None = None,
    embeddings: np.ndarray | None = None,
    labelled_embeddings: np.ndarray | None = None,
    seed: int = 0,
    pool_factor: float = 4.0,
) -> QueryResult:
    """Pick ``batch_size`` pool items. Arrays are indexed by pool position."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
    n = len(uncertainty) if uncertainty is not None else (len(embeddings) if embeddings is not None else 0)
    if batch_size < 1:
        raise ValueError(f"batch size must be at least 1, got {batch_size}")
    k = min(batch_size, n)
    u = None if uncertainty is None else np.asarray(uncertainty, dtype=np.float64)
    if strategy in ("uncertainty", "hybrid") and u is None:
        raise ValueError(f"strategy {strategy!r} needs uncertainty scores")
    if strategy in ("diversity", "hybrid") and embeddings is None:
        raise ValueError(f"strategy {strategy!r} needs embeddings")

    if strategy == "random":
        picks = np.random.default_rng(seed).permutation(n)[:k].tolist()
    elif strategy == "uncertainty":
        picks = np.lexsort((np.arange(n), -u))[:k].tolist()  # stable: ties by index
    elif strategy == "diversity":
        picks = k_center_greedy(embeddings, k, labelled_embeddings, seed=seed)
    else:
        m = min(n, max(k, int(np.ceil(pool_factor * k))))
        top = np.lexsort((np.arange(n), -u))[:m]
        picks = k_center_greedy(embeddings, k, labelled_embeddings, candidates=top, seed=seed)
    scores = [float(u[i]) if u is not None else float("nan") for i in picks]
    return QueryResult([int(i) for i in picks], scores)
