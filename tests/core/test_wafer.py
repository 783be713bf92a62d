from __future__ import annotations

import numpy as np
import pytest

from waferdesk.core.errors import ValidationError
from waferdesk.core.results import Verdict, VerdictPolicy, summarize, verdict_from_counts
from waferdesk.core.taxonomy import IGNORE, default_taxonomy, load_taxonomy
from waferdesk.core.wafer import FAIL, PASS, LabelMask, WaferMap


def _grid() -> np.ndarray:
    g = np.ones((5, 6), dtype=np.uint8)
    g[0, 0] = g[0, 5] = 0
    g[2, 2:5] = FAIL
    return g


def test_wafer_stats_and_hashes_are_stable() -> None:
    w = WaferMap(_grid(), lot="L1", wafer_id="03")
    assert (w.n_dies, w.n_fail) == (28, 3)
    assert w.fail_rate == pytest.approx(3 / 28)
    same = WaferMap(_grid().astype(np.int64), lot="L1", wafer_id="03", source="other.csv")
    assert w.content_hash() == same.content_hash()  # the source file is not identity
    assert w.content_hash() != WaferMap(_grid(), lot="L2", wafer_id="03").content_hash()
    assert w.grid_hash() == WaferMap(_grid(), lot="L2").grid_hash()
    assert len(w.content_hash()) == 64
    with pytest.raises(ValueError):
        w.dies[0, 0] = 2  # immutable


@pytest.mark.parametrize(
    ("grid", "needle"),
    [
        (np.zeros((3, 3, 2), np.uint8), "2-D"),
        (np.full((3, 3), 3, np.uint8), "value 3 at row 0, col 0"),
        (np.zeros((0, 4), np.uint8), "size 0x4"),
        (np.zeros((3, 3), np.float32), "dtype float32"),
        (np.zeros((5000, 2), np.uint8), "5000x2"),
    ],
)
def test_bad_grids_are_rejected_with_the_problem_named(grid: np.ndarray, needle: str) -> None:
    with pytest.raises(ValidationError, match=needle):
        WaferMap(grid, lot="L")


def test_bad_notch_and_pitch() -> None:
    with pytest.raises(ValidationError, match="notch"):
        WaferMap(_grid(), notch="north")
    with pytest.raises(ValidationError, match="pitch"):
        WaferMap(_grid(), die_pitch=(0.0, 1.0))


def test_from_bins_maps_codes_to_pass_fail() -> None:
    bins = np.array([[-1, 1, 7], [1, 2, -1]])
    w = WaferMap.from_bins(bins, {1, 2})
    assert w.dies.tolist() == [[0, 1, 2], [1, 1, 0]]
    assert w.bins is not None and w.bins[0, 2] == 7


def test_label_mask_validation_names_the_cell() -> None:
    w = WaferMap(_grid())
    labels = np.full(w.shape, IGNORE, np.uint8)
    labels[2, 2:5] = 3
    LabelMask(labels).validate(w, complete=True)
    labels[1, 1] = 0  # a pass die
    with pytest.raises(ValidationError, match="'edge' on a pass die at row 1, col 1"):
        LabelMask(labels).validate(w)
    labels[1, 1] = IGNORE
    labels[0, 0] = 2  # no die
    with pytest.raises(ValidationError, match="no-die cell at row 0, col 0"):
        LabelMask(labels).validate(w)
    labels[0, 0] = IGNORE
    labels[2, 3] = IGNORE
    LabelMask(labels).validate(w)  # a draft may leave fails unlabelled
    with pytest.raises(ValidationError, match="unlabelled"):
        LabelMask(labels).validate(w, complete=True)
    labels[2, 3] = 9
    with pytest.raises(ValidationError, match="label value 9"):
        LabelMask(labels).validate(w)
    with pytest.raises(ValidationError, match="shape"):
        LabelMask(np.full((2, 2), IGNORE, np.uint8)).validate(w)


def test_restricted_to_fails_drops_labels_elsewhere() -> None:
    w = WaferMap(_grid())
    m = LabelMask(np.zeros(w.shape, np.uint8)).restricted_to_fails(w)
    m.validate(w, complete=True)
    assert m.counts()[0] == 3


def test_taxonomy_is_the_shipped_one() -> None:
    tax = default_taxonomy()
    assert tax.names == ("edge", "center", "ring", "scratch", "particle", "lithography", "etching", "random")
    assert [c.key for c in tax.classes] == [str(i) for i in range(1, 9)]
    assert tax.classes[0].color == (0xE6, 0x19, 0x4B)  # edge red
    assert tax.classes[1].color[2] > 200  # center blue
    assert len({c.color_cb for c in tax.classes}) == 8
    assert tax.index("ring") == 2
    assert not tax.classes[tax.index("random")].systematic


def test_broken_taxonomy_file_is_named(tmp_path) -> None:
    bad = tmp_path / "t.json"
    bad.write_text('{"classes": [{"name": "a"}]}')
    with pytest.raises(Exception, match=str(bad)):
        load_taxonomy(bad)


def test_verdict_rules() -> None:
    tax = default_taxonomy()
    pol = VerdictPolicy(min_share=0.2, min_dies=3, random_min_density=0.25)
    c = np.zeros(8, int)
    assert str(verdict_from_counts(c, 100, pol)) == "none"
    c[tax.index("ring")] = 30
    c[tax.index("scratch")] = 10
    c[tax.index("random")] = 20  # 20 % of 100 dies: scattered fails, not a "random" wafer
    v = verdict_from_counts(c, 100, pol)
    assert v.classes == ("ring",)  # scratch owns 10/60 < 20 %
    c[tax.index("scratch")] = 25
    assert str(verdict_from_counts(c, 100, pol)) == "ring+scratch"
    c[:] = 0
    c[tax.index("random")] = 40
    assert str(verdict_from_counts(c, 100, pol)) == "random"
    c[tax.index("particle")] = 2  # under min_dies
    assert str(verdict_from_counts(c, 100, pol)) == "random"
    assert Verdict.parse("ring+scratch").classes == ("ring", "scratch")
    assert Verdict.parse("none").primary == "none"


def test_summary_counts_and_pareto() -> None:
    w = WaferMap(_grid())
    labels = np.full(w.shape, IGNORE, np.uint8)
    labels[2, 2:4] = 3
    labels[2, 4] = 7
    s = summarize(w, LabelMask(labels))
    assert s.counts["scratch"] == 2 and s.counts["random"] == 1
    assert s.pareto() == [("scratch", 2), ("random", 1)]
    assert s.yield_loss()["scratch"] == pytest.approx(2 / 28)
    assert PASS == 1
