"""Training data: symmetries, canvas-bucketed batches, determinism and resumability."""

from __future__ import annotations

import numpy as np

from waferdesk.core.encoding import canvas_for
from waferdesk.core.synth import SynthConfig, generate_record
from waferdesk.core.taxonomy import IGNORE
from waferdesk.core.wafer import FAIL
from waferdesk.ml.data import (
    StreamState,
    SynthStream,
    augment,
    batch_for,
    dihedral,
    load_wm811k,
    stratified_subset,
    wm811k_labels,
)


def test_dihedral_gives_the_8_distinct_symmetries() -> None:
    g = np.arange(12).reshape(3, 4)
    outs = {dihedral(g, k).tobytes() + bytes(dihedral(g, k).shape) for k in range(8)}
    assert len(outs) == 8


def test_augmentation_keeps_labels_on_the_same_dies() -> None:
    rng = np.random.default_rng(0)
    for i in range(20):
        rec = generate_record(3, i)
        d, lab = augment(rec.wafer.dies, rec.mask.labels, rng)
        assert ((lab != IGNORE) == (d == FAIL)).all()
        before = np.bincount(rec.mask.labels.ravel(), minlength=256)
        assert np.array_equal(np.bincount(lab.ravel(), minlength=256)[:255], before[:255])  # margins add 255s


def test_batches_share_a_canvas_and_pixel_budget() -> None:
    stream = SynthStream(11, SynthConfig(), batch_size=8)
    for _ in range(12):
        x, y = next(stream)
        n, c, h, w = x.shape
        assert c == 6 and h % 32 == 0 and w % 32 == 0 and y.shape == (n, h, w)
        assert n == batch_for((h, w), 8)
        assert ((y != IGNORE) == (x[:, 0] == 1)).all()  # labels exactly on the fail channel


def test_stream_is_deterministic_and_resumes_from_its_state() -> None:
    a = SynthStream(5, batch_size=4)
    first = [next(a) for _ in range(5)]
    saved = StreamState.from_json(a.state.to_json())
    after = [next(a) for _ in range(3)]
    b = SynthStream(5, batch_size=4)
    assert all(np.array_equal(p[0], q[0]) for p, q in zip(first, [next(b) for _ in range(5)], strict=True))
    c = SynthStream(5, batch_size=4, state=saved)
    for (x1, y1), (x2, y2) in zip(after, [next(c) for _ in range(3)], strict=True):
        assert np.array_equal(x1, x2) and np.array_equal(y1, y2)


def test_real_maps_load_with_labels(real_data_path) -> None:
    labels = wm811k_labels(real_data_path)
    assert len(labels) == 12450
    idx = stratified_subset(labels, 3, seed=0)
    assert len(idx) == 27 and idx == stratified_subset(labels, 3, seed=0)
    maps = load_wm811k(real_data_path, idx)
    assert {m.label for m in maps} == set(labels)
    assert all(canvas_for(m.shape)[0] % 32 == 0 and m.n_dies > 0 for m in maps)


def test_worker_processes_give_the_same_batches_and_resume() -> None:
    """Wafers made ahead in worker processes: identical batches, also after a resume."""
    plain = SynthStream(7, batch_size=4)
    expected = [next(plain) for _ in range(8)]
    par = SynthStream(7, batch_size=4, workers=2, lookahead=4)
    try:
        got = [next(par) for _ in range(5)]
        saved = StreamState.from_json(par.state.to_json())
    finally:
        par.close()
    assert par._pool is None
    resumed = SynthStream(7, batch_size=4, workers=1, state=saved)
    try:
        got += [next(resumed) for _ in range(3)]
    finally:
        resumed.close()
    for (x1, y1), (x2, y2) in zip(expected, got, strict=True):
        assert np.array_equal(x1, x2) and np.array_equal(y1, y2)
