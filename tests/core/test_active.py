from __future__ import annotations

import numpy as np
import pytest

from waferdesk.core.active import (
    dihedral,
    dihedral_inverse,
    k_center_greedy,
    select,
    tta_disagreement,
    uncertainty_scores,
)


def _probs(dies: np.ndarray, confident: bool) -> np.ndarray:
    k = 8
    p = np.full((k, *dies.shape), 1.0 / k, np.float32)
    if confident:
        p[:] = 0.001
        p[2] = 1 - 0.007
    return p


def test_uncertainty_is_measured_over_failing_dies_only() -> None:
    dies = np.ones((6, 6), np.uint8)
    dies[2, 2:5] = 2
    conf = _probs(dies, True)
    unsure = conf.copy()
    unsure[:, dies == 1] = 1 / 8  # pass dies uncertain: must not matter
    a, b = uncertainty_scores(conf, dies), uncertainty_scores(unsure, dies)
    assert a == b
    flat = uncertainty_scores(_probs(dies, False), dies)
    assert flat["entropy_mean"] == pytest.approx(1.0) and flat["margin_mean"] == pytest.approx(0.0)
    assert a["entropy_mean"] < 0.1 and a["margin_mean"] > 0.9
    assert uncertainty_scores(conf, np.ones((6, 6), np.uint8))["entropy_max"] == 0.0


def test_dihedral_inverse_and_tta_disagreement() -> None:
    g = np.arange(12).reshape(3, 4)
    for k in range(8):
        assert np.array_equal(dihedral_inverse(dihedral(g, k), k), g)
    assert len({dihedral(g, k).tobytes() for k in range(8)}) == 8
    dies = np.full((3, 4), 2, np.uint8)
    same = [_probs(dies, True)] * 8
    assert tta_disagreement(same, dies)["tta_vote_disagreement"] == 0.0
    other = _probs(dies, True)[[3, 1, 0, 2, 4, 5, 6, 7]]  # a different argmax
    mixed = [same[0]] * 4 + [other] * 4
    d = tta_disagreement(mixed, dies)
    assert d["tta_vote_disagreement"] == pytest.approx(0.5) and d["tta_mutual_info"] > 0.2


def test_k_center_covers_clusters_and_respects_the_labelled_set() -> None:
    rng = np.random.default_rng(0)
    centers = np.array([[0, 0], [10, 0], [0, 10], [10, 10]], float)
    x = np.concatenate([c + rng.normal(0, 0.3, (50, 2)) for c in centers])
    picks = k_center_greedy(x, 4)
    assert sorted(p // 50 for p in picks) == [0, 1, 2, 3]  # one from each cluster
    picks = k_center_greedy(x, 2, labelled=x[:100])  # clusters 0 and 1 already labelled
    assert sorted(p // 50 for p in picks) == [2, 3]
    assert k_center_greedy(x, 3, seed=1) == k_center_greedy(x, 3, seed=1)


def test_strategies_are_deterministic_and_different() -> None:
    rng = np.random.default_rng(1)
    n = 400
    emb = rng.normal(size=(n, 16))
    emb[:200] += 6.0  # two blobs
    u = rng.random(n)
    u[:200] += 1.0  # the uncertain wafers all sit in blob 0
    r1 = select("random", 20, u, emb, seed=3)
    assert r1.indices == select("random", 20, u, emb, seed=3).indices
    assert r1.indices != select("random", 20, u, emb, seed=4).indices
    unc = select("uncertainty", 20, u, emb).indices
    assert unc == list(np.argsort(-u)[:20])
    hyb = select("hybrid", 20, u, emb, pool_factor=4).indices
    assert set(hyb) <= set(np.argsort(-u)[:80])  # among the most uncertain
    assert len(set(hyb)) == 20
    div = select("diversity", 20, u, emb).indices
    assert any(i < 200 for i in div) and any(i >= 200 for i in div)  # covers both blobs
    with pytest.raises(ValueError, match="unknown strategy"):
        select("magic", 2, u, emb)
    with pytest.raises(ValueError, match="needs embeddings"):
        select("hybrid", 2, u, None)
