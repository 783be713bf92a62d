"""Batch prediction: wafers of mixed sizes, grouped by canvas, give the same per-wafer
answers as one at a time, in input order, with progress."""

from __future__ import annotations

import numpy as np
import pytest

from waferdesk.core.encoding import canvas_for
from waferdesk.core.inference import Segmenter
from waferdesk.core.synth import SynthConfig, generate
from waferdesk.core.wafer import WaferMap

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def mixed() -> list[WaferMap]:
    small = [r.wafer for r in generate(14, seed=11, cfg=SynthConfig(size_range=(15, 45)))]
    big = [r.wafer for r in generate(4, seed=12, cfg=SynthConfig(size_range=(60, 140)))]
    rng = np.random.default_rng(0)
    twins = []  # same grid shape (one placement group inside a batch), different fails
    for _ in range(3):
        d = small[0].dies.copy()
        flip = (rng.random(d.shape) < 0.2) & (d != 0)
        d[flip] = 3 - d[flip]
        twins.append(WaferMap(d, lot="TWIN"))
    small += twins
    out = []
    for i, w in enumerate(small):  # interleave so that batches must be regrouped
        out.append(w)
        if i % 4 == 0 and big:
            out.append(big.pop())
    return out


def _same(a, b) -> None:
    assert np.array_equal(a.mask.labels, b.mask.labels)
    np.testing.assert_allclose(a.probs, b.probs, atol=1e-5)
    np.testing.assert_allclose(a.embedding, b.embedding, atol=1e-5)
    assert a.summary == b.summary and a.wafer_hash == b.wafer_hash


def test_mixed_sizes_batched_equal_one_at_a_time(tiny_model, mixed) -> None:
    assert len({canvas_for(w.shape) for w in mixed}) >= 3
    seg = Segmenter(tiny_model, providers="cpu", cache=False)
    singles = [seg.predict(w) for w in mixed]
    runs0 = seg.runs
    progress = []
    batched = list(seg.predict_many(mixed, batch_size=8, on_progress=lambda d, t: progress.append((d, t))))
    assert len(batched) == len(mixed)
    for a, b in zip(singles, batched, strict=True):
        _same(a, b)
    assert seg.runs - runs0 < len(mixed)  # really batched
    assert progress == [(i + 1, len(mixed)) for i in range(len(mixed))]


def test_stream_keeps_order_with_a_small_waiting_room(tiny_model, mixed) -> None:
    seg = Segmenter(tiny_model, providers="cpu", cache=False)
    ref = [seg.predict(w) for w in mixed]
    got = list(seg.predict_many(iter(mixed), batch_size=4, max_pending=3))
    assert [p.wafer_hash for p in got] == [w.content_hash() for w in mixed]
    for a, b in zip(ref, got, strict=True):
        _same(a, b)


def test_stream_yields_before_the_input_ends(tiny_model, mixed) -> None:
    seg = Segmenter(tiny_model, providers="cpu", cache=False)
    fed = []

    def feed():
        for w in mixed:
            fed.append(w)
            yield w

    stream = seg.predict_many(feed(), batch_size=2, max_pending=2)
    next(stream)
    assert len(fed) < len(mixed)


def test_repeated_grids_in_a_stream_run_once(tiny_model, mixed) -> None:
    seg = Segmenter(tiny_model, providers="cpu", cache=False)
    twin = mixed[0].with_(lot="OTHER", wafer_id="9")
    runs0 = seg.runs
    out = list(seg.predict_many([mixed[0], twin], batch_size=8))
    assert seg.runs - runs0 == 1
    assert np.array_equal(out[0].mask.labels, out[1].mask.labels)
    assert out[1].wafer_hash == twin.content_hash() != out[0].wafer_hash


def test_predict_batch_refuses_mixed_canvases(tiny_model, mixed) -> None:
    seg = Segmenter(tiny_model, providers="cpu", cache=False)
    a = next(w for w in mixed if canvas_for(w.shape) == (64, 64) or max(w.shape) <= 32)
    b = next(w for w in mixed if canvas_for(w.shape) != canvas_for(a.shape))
    with pytest.raises(ValueError, match="one canvas size"):
        seg.predict_batch([a, b])
    with pytest.raises(ValueError, match="batch_size"):
        list(seg.predict_many([a], batch_size=0))
