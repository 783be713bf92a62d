from __future__ import annotations

import numpy as np
import pytest

from waferdesk.core.encoding import (
    CHANNELS,
    canvas_for,
    decode,
    encode,
    encode_batch,
    encode_labels,
    placement,
)
from waferdesk.core.synth import generate_record


@pytest.mark.parametrize("shape", [(10, 10), (26, 25), (41, 40), (64, 64), (211, 198), (300, 300)])
def test_canvas_is_a_multiple_of_32_and_holds_the_grid(shape) -> None:
    ch, cw = canvas_for(shape)
    assert ch % 32 == 0 and cw % 32 == 0
    p = placement(shape)
    assert p.top + shape[0] * p.scale <= ch and p.left + shape[1] * p.scale <= cw


def test_channels_round_trip_per_die() -> None:
    rec = generate_record(0, 3)
    x, place = encode(rec.wafer.dies)
    assert x.shape[0] == len(CHANNELS) and x.dtype == np.float32
    per_die = decode(x, place)
    assert np.array_equal(per_die[0] == 1, rec.wafer.dies == 2)
    assert np.array_equal(per_die[1] == 1, rec.wafer.dies == 1)
    assert np.array_equal(per_die[2] == 1, rec.wafer.dies != 0)
    # radius: ~0 at the centre of the on-wafer dies, ~1 at the rim
    on = rec.wafer.dies != 0
    assert per_die[3][on].min() < 0.15 and 0.85 < per_die[3][on].max() < 1.45


def test_small_maps_are_upscaled_and_decode_back() -> None:
    dies = np.ones((20, 22), np.uint8)
    x, place = encode(dies)
    assert place.scale == 2 and x.shape[1:] == (64, 64)
    scores = np.random.default_rng(0).random((8, 64, 64)).astype(np.float32)
    d = decode(scores, place)
    assert d.shape == (8, 20, 22)
    r, c = 5, 7
    block = scores[:, place.top + 2 * r : place.top + 2 * r + 2, place.left + 2 * c : place.left + 2 * c + 2]
    assert np.allclose(d[:, r, c], block.mean(axis=(1, 2)))


def test_batch_shares_one_canvas_and_matches_single_encoding_inside() -> None:
    a, b = generate_record(1, 0).wafer.dies, generate_record(1, 1).wafer.dies
    xb, places = encode_batch([a, b])
    for i, g in enumerate((a, b)):
        single, _ = encode(g, canvas=xb.shape[2:])
        assert np.array_equal(xb[i], single)
        assert decode(xb[i], places[i]).shape[1:] == g.shape


def test_labels_follow_the_input_placement() -> None:
    rec = generate_record(2, 0)
    _, place = encode(rec.wafer.dies)
    lab = encode_labels(rec.mask.labels, place)
    assert lab.shape == place.canvas
    back = decode(lab[None].astype(np.float32), place)[0]
    assert np.array_equal(back.astype(np.uint8), rec.mask.labels)
