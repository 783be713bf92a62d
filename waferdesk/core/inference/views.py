"""Test-time augmentation: the model run on several dihedral views of a wafer, averaged.

Training shows the network every wafer in all 8 dihedral orientations (rotations by 90
degrees, with and without a mirror), and a defect class never depends on orientation. The
trained network is still not exactly invariant: its mistakes differ from view to view.
Running it on rotated copies of the die grid, rotating each answer back and averaging the
per-die logits cancels part of those mistakes. On the shipped model, 4 rotations raised
mIoU on the 2,000-wafer synthetic test set from 0.6605 to 0.6694 and real macro-F1 from
0.6931 to 0.7028, for 3.1x the time of one wafer (3.6x in bulk); 8 views added nothing over
4 (docs/ml.md, "Test-time augmentation").

Views act on the die grid, before the shared encoding, so each view is a wafer the model
could have been trained on (its coordinate channels are recomputed for the view). The
transforms are the ones active learning's disagreement score uses,
:func:`~waferdesk.core.active.scores.dihedral` and its inverse.
"""

from __future__ import annotations

import numpy as np

from ..active.scores import dihedral, dihedral_inverse

VIEW_SETS: dict[int, tuple[int, ...]] = {
    1: (0,),  # the wafer as it is
    2: (0, 5),  # and its left-right mirror image
    4: (0, 1, 2, 3),  # the four rotations
    8: (0, 1, 2, 3, 4, 5, 6, 7),  # rotations, each with and without a reflection
}
"""Number of views -> the :func:`dihedral` transforms used (0-3: rotation by k*90 degrees;
4-7: the same, then transposed; 5 is the left-right mirror)."""


def check_views(views: object, where: str = "views") -> int:
    """``views`` as an int if it is a supported number of views, else a ValueError naming it."""
    if isinstance(views, bool) or not isinstance(views, int | np.integer) or int(views) not in VIEW_SETS:
        raise ValueError(f"{where} must be one of {sorted(VIEW_SETS)}, got {views!r}")
    return int(views)


__all__ = ["VIEW_SETS", "check_views", "dihedral", "dihedral_inverse"]
