"""Test-time augmentation: the engine averages the model over dihedral views of each wafer.

The answers must be exactly "rotate the wafer, run, rotate back, average the logits", for
non-square grids and batches of mixed shapes, keyed apart in the cache, and chosen by the
model card unless the caller says otherwise."""

from __future__ import annotations

import json

import numpy as np
import pytest
from model_fixtures import make_tiny_model

from waferdesk.core.errors import ModelError
from waferdesk.core.inference import PredictionCache, Segmenter, softmax
from waferdesk.core.inference.views import VIEW_SETS, check_views, dihedral, dihedral_inverse
from waferdesk.core.modelcard import card_path_for
from waferdesk.core.synth import SynthConfig, generate
from waferdesk.core.taxonomy import IGNORE
from waferdesk.core.wafer import FAIL, WaferMap

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def wafers() -> list[WaferMap]:
    out = [r.wafer for r in generate(6, seed=21, cfg=SynthConfig(size_range=(14, 40)))]
    # a non-square grid: a transposition bug cannot hide on it
    out.append(WaferMap(out[0].dies[:, 3:-1].copy(), lot="CROP"))
    return out


def test_views_are_the_eight_dihedral_transforms_and_invert_exactly() -> None:
    a = np.arange(2 * 3 * 5).reshape(2, 3, 5)
    seen = set()
    for k in VIEW_SETS[8]:
        v = dihedral(a, k)
        seen.add(v.tobytes() + bytes(v.shape))
        assert np.array_equal(dihedral_inverse(v, k), a)
    assert len(seen) == 8
    for n, ks in VIEW_SETS.items():
        assert len(ks) == n and ks[0] == 0  # every set starts with the wafer as it is


@pytest.mark.parametrize("bad", [0, 3, 16, "4", 4.0, True, None])
def test_unsupported_view_counts_are_refused_by_name(bad) -> None:
    with pytest.raises(ValueError, match=r"views must be one of \[1, 2, 4, 8\]"):
        check_views(bad)


@pytest.mark.parametrize("views", [2, 4, 8])
def test_prediction_is_the_average_of_single_view_predictions(tiny_model, wafers, views) -> None:
    one = Segmenter(tiny_model, providers="cpu", cache=False, views=1)
    many = Segmenter(tiny_model, providers="cpu", cache=False, views=views)
    for w in wafers:
        got = many.predict(w)
        # log-probabilities are logits up to a per-die constant, which the softmax ignores
        logs = [
            dihedral_inverse(np.log(one.predict(WaferMap(np.ascontiguousarray(dihedral(w.dies, k)))).probs), k)
            for k in VIEW_SETS[views]
        ]
        expected = softmax(np.mean(logs, axis=0), axis=0)
        assert got.probs.shape == (8, *w.shape) and got.views == views
        np.testing.assert_allclose(got.probs, expected, atol=2e-5)
        assert np.array_equal(got.mask.labels != IGNORE, w.dies == FAIL)  # classes on failing dies only
        assert np.array_equal(np.where(w.dies == FAIL, expected.argmax(0), IGNORE), got.mask.labels)


def test_eight_views_make_the_answer_rotation_equivariant(tiny_model, wafers) -> None:
    one = Segmenter(tiny_model, providers="cpu", cache=False, views=1)
    eight = Segmenter(tiny_model, providers="cpu", cache=False, views=8)
    w = wafers[-1]  # non-square
    turned = WaferMap(np.ascontiguousarray(np.rot90(w.dies)))
    p, q = eight.predict(w), eight.predict(turned)
    np.testing.assert_allclose(np.rot90(p.probs, axes=(1, 2)), q.probs, atol=1e-5)
    np.testing.assert_allclose(p.embedding, q.embedding, atol=1e-5)
    assert p.summary == q.summary
    # one view is not equivariant (the tiny model's random kernels are not symmetric)
    assert not np.allclose(np.rot90(one.predict(w).probs, axes=(1, 2)), one.predict(turned).probs, atol=1e-3)


def test_batches_of_mixed_shapes_equal_one_at_a_time(tiny_model, wafers) -> None:
    seg = Segmenter(tiny_model, providers="cpu", cache=False, views=4)
    singles = [seg.predict(w) for w in wafers]
    runs = seg.runs
    batched = list(seg.predict_many(wafers, batch_size=16))
    assert seg.runs - runs < 4 * len(wafers)  # really batched: one run per view and canvas
    for a, b in zip(singles, batched, strict=True):
        assert np.array_equal(a.mask.labels, b.mask.labels)
        np.testing.assert_allclose(a.probs, b.probs, atol=1e-5)
        np.testing.assert_allclose(a.embedding, b.embedding, atol=1e-5)


def test_cache_keeps_one_answer_per_view_count(tmp_path, tiny_model, wafers) -> None:
    for cache in (PredictionCache(), PredictionCache(directory=tmp_path / "cache")):
        one = Segmenter(tiny_model, providers="cpu", cache=cache, views=1)
        four = Segmenter(tiny_model, providers="cpu", cache=cache, views=4)
        p1, p4 = one.predict(wafers[1]), four.predict(wafers[1])
        assert not p4.cached and p4.views == 4 and not np.allclose(p1.probs, p4.probs)
        assert one.predict(wafers[1]).cached and four.predict(wafers[1]).cached
        if cache.directory:  # a fresh process reads each back under its own key
            again = Segmenter(tiny_model, providers="cpu", cache=PredictionCache(directory=cache.directory), views=4)
            hit = again.predict(wafers[1])
            assert hit.cached and hit.views == 4
            np.testing.assert_array_equal(hit.probs, p4.probs)


def test_the_card_chooses_the_default_and_the_caller_overrides_it(tmp_path, wafers) -> None:
    path = make_tiny_model(tmp_path, name="tta", inference={"views": 4})
    seg = Segmenter(path, providers="cpu", cache=False)
    assert seg.views == 4 and seg.describe()["views"] == 4 and "4 views" in repr(seg)
    assert seg.predict(wafers[0]).to_json()["model"]["views"] == 4
    assert Segmenter(path, providers="cpu", cache=False, views=1).views == 1
    plain = make_tiny_model(tmp_path, name="plain")
    assert Segmenter(plain, providers="cpu", cache=False).views == 1  # no inference block: one view


def test_a_card_asking_for_unsupported_views_is_refused_naming_the_model(tmp_path) -> None:
    path = make_tiny_model(tmp_path, name="bad", inference={"views": 3})
    with pytest.raises(ModelError, match=r"bad\.onnx: its card's inference\.views must be one of .* got 3"):
        Segmenter(path, providers="cpu", cache=False)
    card = json.loads(card_path_for(path).read_text())
    assert card["inference"] == {"views": 3}  # nothing rewritten


def test_with_views_shares_the_session_and_answers_like_a_fresh_engine(tiny_model, wafers) -> None:
    four = Segmenter(tiny_model, providers="cpu", cache=PredictionCache(), views=4)
    one = four.with_views(1)
    assert one.session is four.session and one.cache is four.cache  # no second model load
    assert (one.views, four.views) == (1, 4) and one.model_key != four.model_key
    assert four.with_views(4) is four
    fresh = Segmenter(tiny_model, providers="cpu", cache=False, views=1)
    p4 = four.predict(wafers[2])
    p1 = one.predict(wafers[2])  # same wafer, shared cache: must not get the 4-view answer
    assert not p1.cached and p1.views == 1
    np.testing.assert_allclose(p1.probs, fresh.predict(wafers[2]).probs, atol=1e-6)
    assert four.predict(wafers[2]).cached and not np.allclose(p1.probs, p4.probs)
    with pytest.raises(ValueError, match="views must be one of"):
        four.with_views(3)
