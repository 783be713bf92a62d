"""Test-time-augmentation disagreement: the active model run on the 8 symmetries of a wafer.

A cheap ensemble: each symmetry's per-die probabilities are mapped back to the original
orientation (:func:`~waferdesk.core.active.dihedral_inverse`) and
:func:`~waferdesk.core.active.tta_disagreement` measures how much they disagree on the
failing dies (mutual information and vote disagreement). It costs 8 model runs per wafer,
so a query asks for it explicitly (``tta: true``). The symmetries are compared one view at a
time (:meth:`~waferdesk.core.inference.Segmenter.with_views`), whatever number of views the
served model's card averages: a 4-rotation average answers every rotation of a wafer
identically, which would leave only the mirror to disagree with.
"""

from __future__ import annotations

from collections.abc import Sequence

from waferdesk.core.active import dihedral, dihedral_inverse, tta_disagreement
from waferdesk.core.inference import Segmenter
from waferdesk.core.wafer import WaferMap

SYMMETRIES = range(8)
CHUNK = 16  # wafers per pass: bounds memory at 8 x CHUNK probability grids


def tta_scores(segmenter: Segmenter, wafers: Sequence[WaferMap]) -> list[dict[str, float]]:
    segmenter = segmenter.with_views(1)
    out: list[dict[str, float]] = []
    for start in range(0, len(wafers), CHUNK):
        chunk = list(wafers[start : start + CHUNK])
        # only the die grid matters to the model; bins would not follow a transpose
        views = [WaferMap(dies=dihedral(w.dies, k)) for k in SYMMETRIES for w in chunk]
        preds = list(segmenter.predict_many(views))
        for i, w in enumerate(chunk):
            aligned = [dihedral_inverse(preds[k * len(chunk) + i].probs, k) for k in SYMMETRIES]
            out.append(tta_disagreement(aligned, w.dies))
    return out
