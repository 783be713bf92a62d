"""Each class generator makes what its definition says, measured from the outside.

The measurements use only the die grid and the label mask (plus the same wafer frame the
encoding uses), never the generator's internal parameters.
"""

from __future__ import annotations

import numpy as np
import pytest

from waferdesk.core.encoding import wafer_frame
from waferdesk.core.synth import SynthConfig, generate, generate_record
from waferdesk.core.synth.geometry import make_geometry
from waferdesk.core.taxonomy import IGNORE, default_taxonomy
from waferdesk.core.wafer import FAIL, NO_DIE

TAX = default_taxonomy()
N = 40  # wafers per class check


def _polar(dies: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    cr, cc, ar, ac = wafer_frame(dies)
    rows, cols = np.mgrid[0 : dies.shape[0], 0 : dies.shape[1]]
    y = (rows + 0.5 - cr) / ar
    x = (cols + 0.5 - cc) / ac
    return rows, cols, np.hypot(x, y), np.arctan2(y, x)


def _only(name: str, mode: str | None = None, seed: int = 7, size=(24, 90)):
    cfg = SynthConfig(size_range=size)
    for i in range(N):
        rec = generate_record(seed, i, cfg, classes=[name], modes={name: mode} if mode else None, dense_random=False)
        sel = rec.mask.labels == TAX.index(name)
        if sel.sum() >= 6:
            yield rec, sel


def test_labels_sit_on_failing_dies_only_and_every_fail_is_labelled() -> None:
    for rec in generate(200, seed=3):
        rec.mask.validate(rec.wafer, complete=True)
        assert ((rec.mask.labels != IGNORE) == (rec.wafer.dies == FAIL)).all()


def test_generation_is_deterministic_per_seed_and_index() -> None:
    a = generate_record(11, 5)
    b = list(generate(3, seed=11, start=4))[1]
    assert np.array_equal(a.wafer.dies, b.wafer.dies) and np.array_equal(a.mask.labels, b.mask.labels)
    c = generate_record(12, 5)
    assert a.wafer.content_hash() != c.wafer.content_hash()


def test_sizes_aspects_and_notches_vary_within_range() -> None:
    rng = np.random.default_rng(0)
    geos = [make_geometry(rng, (15, 200)) for _ in range(400)]
    across = np.array([max(g.shape) for g in geos])
    assert across.min() >= 12 and across.max() <= 215 and np.percentile(across, 50) < 45
    assert sum(g.shape[0] != g.shape[1] for g in geos) > 200  # non-square die grids
    assert {g.notch for g in geos} == {"up", "down", "left", "right"}


def test_every_class_appears_in_a_default_data_set() -> None:
    counts = np.zeros(len(TAX), int)
    for rec in generate(300, seed=5):
        counts += rec.mask.counts()
    assert (counts > 0).all(), dict(zip(TAX.names, counts, strict=True))


def test_ring_sits_in_a_radius_band() -> None:
    seen = 0
    for rec, sel in _only("ring", "full"):
        _, _, r, _ = _polar(rec.wafer.dies)
        rr = r[sel]
        assert 0.25 < np.median(rr) < 0.8
        assert np.percentile(rr, 90) - np.percentile(rr, 10) < 0.35  # an annulus, not a disc
        assert np.percentile(rr, 5) > 0.12  # hollow centre
        seen += 1
    assert seen >= 20


def _rim_layers(on: np.ndarray, depth: int = 8) -> np.ndarray:
    layer = np.full(on.shape, depth, int)
    cur = on.copy()
    for k in range(depth):
        p = np.pad(cur, 1)
        inner = cur & p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:]
        layer[cur & ~inner] = k
        cur = inner
    return layer


def test_edge_ring_is_the_outermost_dies_all_round() -> None:
    seen = 0
    for rec, sel in _only("edge", "ring"):
        layer = _rim_layers(rec.wafer.dies != NO_DIE)
        assert layer[sel].max() <= 3  # a band a few dies deep at most
        assert (layer[sel] == 0).mean() > 0.25
        _, _, _, th = _polar(rec.wafer.dies)
        assert np.abs(np.mean(np.exp(1j * th[sel]))) < 0.5  # spread all round, unlike an arc
        seen += 1
    assert seen >= 20


def test_edge_arc_hugs_the_rim_over_a_limited_angle() -> None:
    seen = 0
    for rec, sel in _only("edge", "arc"):
        _, _, r, th = _polar(rec.wafer.dies)
        assert np.median(r[sel]) > 0.75
        mean_dir = np.abs(np.mean(np.exp(1j * th[sel])))
        assert mean_dir > 0.4  # concentrated in angle (a full ring would give ~0)
        seen += 1
    assert seen >= 20


def test_center_is_a_central_blob() -> None:
    seen = 0
    for rec, sel in _only("center"):
        _, _, r, th = _polar(rec.wafer.dies)
        centroid = np.mean(r[sel] * np.exp(1j * th[sel]))
        assert abs(centroid) < 0.3  # centred
        assert np.median(r[sel]) < 0.45 and r[sel].max() < 0.8  # a blob, not a ring or the rim
        seen += 1
    assert seen >= 20


def test_straight_scratch_fits_a_line() -> None:
    seen = 0
    for _rec, sel in _only("scratch", "straight", size=(40, 120)):
        pts = np.argwhere(sel).astype(float)
        if len(pts) < 8:
            continue
        pts -= pts.mean(axis=0)
        s = np.linalg.svd(pts, compute_uv=False) / np.sqrt(len(pts))
        assert s[1] < 1.0, s  # residual across the line under one die
        assert s[0] > 2.5 * s[1]
        seen += 1
    assert seen >= 15


def test_particle_is_compact() -> None:
    seen = 0
    for rec, sel in _only("particle"):
        pts = np.argwhere(sel).astype(float)
        spread = np.ptp(pts, axis=0).max()
        assert spread < 0.45 * max(rec.wafer.shape), (spread, rec.wafer.shape)
        seen += 1
    assert seen >= 20


def _residues(rows: np.ndarray, cols: np.ndarray, sx: int, sy: int) -> int:
    return len(set(zip((rows % sy).tolist(), (cols % sx).tolist(), strict=True)))


def _periods(rows: np.ndarray, cols: np.ndarray) -> list[tuple[int, int, int]]:
    """(sx, sy, residues) for every shot size where the dies take few positions per shot."""
    out = []
    for sy in range(2, 10):
        for sx in range(2, 10):
            n = _residues(rows, cols, sx, sy)
            if sx * sy >= 6 and n <= 3 + max(sx, sy) and n <= sx * sy / 2:
                out.append((sx, sy, n))
    return out


def test_lithography_repeats_with_the_shot_period() -> None:
    seen = 0
    for rec, sel in _only("lithography", "all", size=(30, 90)):
        rows, cols = np.nonzero(sel)
        periods = _periods(rows, cols)
        assert periods, "litho dies show no shot periodicity"
        # the same number of random on-wafer dies shows none at those periods
        rnd = np.argwhere(rec.wafer.dies != NO_DIE)
        pick = rnd[np.random.default_rng(0).choice(len(rnd), len(rows), replace=False)]
        for sx, sy, n in periods[:3]:
            assert _residues(pick[:, 0], pick[:, 1], sx, sy) > n
        seen += 1
    assert seen >= 20


def test_etching_is_broad() -> None:
    seen = 0
    for rec, sel in _only("etching", "side"):
        assert sel.sum() / rec.wafer.n_dies > 0.08
        seen += 1
    assert seen >= 20


def test_dense_random_fails_are_spread_evenly() -> None:
    cfg = SynthConfig(size_range=(30, 60))
    for i in range(20):
        rec = generate_record(9, i, cfg, classes=[], dense_random=True)
        _, _, _, th = _polar(rec.wafer.dies)
        sel = rec.mask.labels == TAX.index("random")
        assert sel.sum() / rec.wafer.n_dies > 0.25
        quads = [(sel & (np.floor((th + np.pi) / (np.pi / 2)) == q)).sum() for q in range(4)]
        assert min(quads) > 0.5 * max(quads)


@pytest.mark.parametrize("name", ["edge", "center", "ring", "scratch", "particle", "lithography", "etching"])
def test_each_class_can_be_drawn_alone(name: str) -> None:
    found = list(_only(name, seed=21))
    assert len(found) >= N // 2
    for rec, sel in found:
        others = (rec.mask.labels != 255) & ~sel & (rec.mask.labels != TAX.index("random"))
        assert not others.any()  # only the asked-for class besides background
