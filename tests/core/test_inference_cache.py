"""The content-addressed cache: the same die grid under the same model is never run twice."""

from __future__ import annotations

import numpy as np
import pytest
from model_fixtures import make_tiny_model

from waferdesk.core.inference import PredictionCache, Segmenter
from waferdesk.core.synth import generate

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def wafers():
    return [r.wafer for r in generate(6, seed=21)]


def _identical(a, b) -> None:
    assert np.array_equal(a.mask.labels, b.mask.labels)
    assert np.array_equal(a.probs, b.probs) and np.array_equal(a.embedding, b.embedding)
    assert a.summary == b.summary and a.uncertainty == b.uncertainty
    assert (a.model_sha256, a.model_version) == (b.model_sha256, b.model_version)


def test_cache_returns_identical_results_without_running(tiny_model, wafers) -> None:
    seg = Segmenter(tiny_model, providers="cpu")
    first = seg.predict(wafers[0])
    runs = seg.runs
    again = seg.predict(wafers[0])
    assert seg.runs == runs and again.cached and not first.cached
    _identical(first, again)
    # the same grid under another name is the same answer, with its own wafer hash
    renamed = seg.predict(wafers[0].with_(lot="L2", source="elsewhere.wdm"))
    assert seg.runs == runs and renamed.wafer_hash != first.wafer_hash
    # predict_many goes through the same cache
    out = list(seg.predict_many(wafers))
    assert out[0].cached and not out[1].cached
    runs = seg.runs
    assert all(p.cached for p in seg.predict_many(wafers)) and seg.runs == runs
    assert seg.cache.hits >= 3


def test_cache_is_keyed_by_model(tmp_path, tiny_model, wafers) -> None:
    shared = PredictionCache()
    a = Segmenter(tiny_model, providers="cpu", cache=shared)
    other = make_tiny_model(tmp_path, seed=5, version="tiny-5")
    b = Segmenter(other, providers="cpu", cache=shared)
    pa = a.predict(wafers[1])
    runs = b.runs
    pb = b.predict(wafers[1])
    assert b.runs == runs + 1 and not pb.cached and pb.model_sha256 != pa.model_sha256


def test_disk_layer_survives_a_new_process_state(tmp_path, tiny_model, wafers) -> None:
    d = tmp_path / "cache"
    seg = Segmenter(tiny_model, providers="cpu", cache=PredictionCache(directory=d))
    first = list(seg.predict_many(wafers))
    assert len(list(d.glob("*/*.npz"))) == len(wafers)
    fresh = Segmenter(tiny_model, providers="cpu", cache=PredictionCache(directory=d))
    runs = fresh.runs
    again = list(fresh.predict_many(wafers))
    assert fresh.runs == runs and all(p.cached for p in again)
    for a, b in zip(first, again, strict=True):
        _identical(a, b)
        assert a.wafer_hash == b.wafer_hash


def test_corrupt_disk_entry_is_a_miss(tmp_path, tiny_model, wafers) -> None:
    d = tmp_path / "cache"
    seg = Segmenter(tiny_model, providers="cpu", cache=PredictionCache(directory=d))
    seg.predict(wafers[0])
    (f,) = d.glob("*/*.npz")
    f.write_bytes(b"garbage")
    fresh = Segmenter(tiny_model, providers="cpu", cache=PredictionCache(directory=d))
    runs = fresh.runs
    assert not fresh.predict(wafers[0]).cached and fresh.runs == runs + 1


def test_memory_bound_evicts_least_recently_used(tiny_model, wafers) -> None:
    seg = Segmenter(tiny_model, providers="cpu", cache=PredictionCache(max_items=2))
    for w in wafers[:3]:
        seg.predict(w)
    assert len(seg.cache) == 2
    runs = seg.runs
    assert seg.predict(wafers[2]).cached and seg.runs == runs
    assert not seg.predict(wafers[0]).cached and seg.runs == runs + 1


def test_disk_prune_keeps_the_byte_bound(tmp_path, tiny_model, wafers) -> None:
    cache = PredictionCache(directory=tmp_path / "c", max_disk_bytes=1)
    seg = Segmenter(tiny_model, providers="cpu", cache=cache)
    list(seg.predict_many(wafers))
    cache.prune()
    assert list((tmp_path / "c").glob("*/*.npz")) == []
