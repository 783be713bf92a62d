"""Die-aware labelling operations: exact dies for brushes, polygons and flood fills."""

from __future__ import annotations

import numpy as np

from waferdesk.core.annotation import (
    Change,
    brush_cells,
    fail_cluster,
    make_change,
    polygon_cells,
    replace_all,
    stroke_cells,
)
from waferdesk.core.taxonomy import IGNORE
from waferdesk.core.wafer import FAIL, PASS


def test_brush_sizes_and_shapes() -> None:
    assert np.argwhere(brush_cells((9, 9), 4.5, 4.2, 1)).tolist() == [[4, 4]]
    sq = brush_cells((9, 9), 4, 4, 3, "square")
    assert sq.sum() == 9 and sq[3:6, 3:6].all()
    circ = brush_cells((11, 11), 5, 5, 5, "circle")
    assert circ.sum() == 21  # 5x5 minus the four corners
    assert not circ[3, 3] and circ[5, 3]
    edge = brush_cells((9, 9), 0, 0, 3, "square")
    assert edge.sum() == 4  # clipped at the grid border


def test_stroke_has_no_gaps() -> None:
    cells = stroke_cells((20, 20), (2, 2), (2, 17), 1)
    assert cells[2, 2:18].all() and cells.sum() == 16


def test_polygon_rasterises_die_centres() -> None:
    # square with corners on die boundaries: exactly the dies inside
    sq = polygon_cells((10, 10), [(2, 3), (6, 3), (6, 8), (2, 8)])
    assert np.argwhere(sq).tolist() == [[r, c] for r in range(3, 8) for c in range(2, 6)]
    # triangle: die centres below the diagonal x = y
    tri = polygon_cells((6, 6), [(0, 0), (6, 6), (0, 6)])
    expect = np.array([[c + 0.5 < r + 0.5 for c in range(6)] for r in range(6)])
    assert np.array_equal(tri, expect)
    assert not polygon_cells((5, 5), [(0, 0), (3, 3)]).any()


def test_fail_cluster_connectivity() -> None:
    dies = np.full((6, 6), PASS, np.uint8)
    dies[1, 1] = dies[1, 2] = dies[2, 3] = FAIL  # (2,3) diagonal to (1,2)
    dies[5, 5] = FAIL
    c8 = fail_cluster(dies, 1, 1)
    assert np.argwhere(c8).tolist() == [[1, 1], [1, 2], [2, 3]]
    c4 = fail_cluster(dies, 1, 1, connectivity=4)
    assert np.argwhere(c4).tolist() == [[1, 1], [1, 2]]
    assert not fail_cluster(dies, 0, 0).any()


def test_change_only_failing_dies_and_merges() -> None:
    dies = np.array([[FAIL, PASS, FAIL], [FAIL, 0, FAIL]], np.uint8)
    labels = np.full(dies.shape, IGNORE, np.uint8)
    ch = make_change(labels, dies, np.ones(dies.shape, bool), 2)
    assert ch is not None and ch.index.tolist() == [0, 2, 3, 5]
    ch.apply(labels)
    assert make_change(labels, dies, np.ones(dies.shape, bool), 2) is None  # nothing new
    ch2 = make_change(labels, dies, dies == FAIL, 4)
    both = ch.merged(ch2)
    assert both.old.tolist() == [IGNORE] * 4 and both.new.tolist() == [4] * 4
    ch2.apply(labels)
    both.revert(labels)
    assert (labels == IGNORE).all()
    assert replace_all(labels, labels.copy()) is None
    assert isinstance(replace_all(labels, np.zeros_like(labels)), Change)
