"""A job's training set, as the server hands it to the worker: approved annotations + wafer grids.

The worker gets one ``.wdm`` file (:func:`waferdesk.core.formats.write_wdm`): every selected
wafer's die grid and metadata with its approved annotation as the label mask, exactly the
records ``waferdesk train --data`` reads. Synthetic wafers (``data.synthetic_count``) are not
sent: the worker generates them itself from their seed, so they cost no transfer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from waferdesk.core.formats import write_wdm
from waferdesk.core.records import WaferRecord


def annotated_records(session: Session, selection: dict[str, Any]) -> list[WaferRecord]:
    """Wafers with an approved annotation matching ``selection`` (rounds, lots), as labelled records."""
    if not selection.get("annotations", True):
        return []
    # TODO(training): approved annotations (issue 6) once they are on main
    return []


def summary(session: Session, selection: dict[str, Any]) -> dict[str, Any]:
    """What a job would train on: counts, for the submit-time check and the worker."""
    n = len(annotated_records(session, selection))
    return {
        "annotated_wafers": n,
        "synthetic_wafers": int(selection.get("synthetic_count") or 0),
        "rounds": selection.get("rounds"),
        "lots": selection.get("lots"),
    }


def write_dataset(session: Session, selection: dict[str, Any], path: Path) -> int:
    recs = annotated_records(session, selection)
    write_wdm(path, recs)
    return len(recs)
