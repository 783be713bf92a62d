"""The hover readout: what the die under the mouse is, in one line."""

from __future__ import annotations

from ...core.taxonomy import IGNORE, default_taxonomy
from ...core.wafer import FAIL, NO_DIE, PASS
from .layers import top_classes
from .workspace import WaferEntry

STATE_NAMES = {NO_DIE: "no die", PASS: "pass", FAIL: "fail"}


def die_readout(entry: WaferEntry, row: int, col: int) -> str:
    """``x 12  y 40  fail  label edge  model edge 91% · ring 6% · random 2%``."""
    names = default_taxonomy().names
    state = int(entry.wafer.dies[row, col])
    parts = [f"x {col:>3}  y {row:>3}", STATE_NAMES.get(state, str(state))]
    if state == FAIL:
        lab = int(entry.labels[row, col])
        parts.append(f"label {names[lab] if lab != IGNORE else '—'}")
    res = entry.prediction
    if res is not None and state != NO_DIE:
        if res.details is not None:
            top = top_classes(res.details.probs, row, col, names)
            parts.append("model " + " · ".join(f"{n} {p:.0%}" for n, p in top))
            if state == FAIL:
                parts.append(f"entropy {float(res.details.entropy[row, col]):.2f}")
        elif state == FAIL and res.labels[row, col] != IGNORE:
            parts.append(f"model {names[int(res.labels[row, col])]}")
    return "   ".join(parts)
