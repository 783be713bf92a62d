"""A wafer together with its label mask, the unit every file format reads and writes."""

from __future__ import annotations

from dataclasses import dataclass

from .wafer import LabelMask, WaferMap


@dataclass(frozen=True, eq=False)
class WaferRecord:
    """One wafer and, when known, its per-die labels (ground truth or an annotation)."""

    wafer: WaferMap
    mask: LabelMask | None = None
