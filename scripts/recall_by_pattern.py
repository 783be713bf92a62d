"""Recall of each drawn pattern on a synthetic test set, by the generator's mode and the
pattern's size: which kinds of scratch, particle or reticle fault the model misses outright
(docs/ml.md, "what limits it").

    .venv/bin/python scripts/recall_by_pattern.py test303.wdm [--views 1] [--limit N] [--model M.onnx]

The generator records what it drew in each wafer (``extra["patterns"]``, e.g.
``lithography:row``); a wafer holds at most one pattern of a class, so the failing dies that
carry a class's label are that pattern's. Per class and mode: instances, the share of their
failing dies the model labels with the class (recall), the instances it misses entirely, and
what their dies were called instead. IoU (``scripts/iou_by_condition.py``) mixes these misses
with false alarms elsewhere; this separates them.
"""

import argparse
from collections import defaultdict

import numpy as np

from waferdesk.core.formats import read_wdm
from waferdesk.core.inference.segmenter import Segmenter
from waferdesk.core.modelcard import default_model_path
from waferdesk.core.taxonomy import IGNORE, default_taxonomy
from waferdesk.core.wafer import FAIL

SIZES = ((1, 10), (10, 20), (20, 50), (50, None))  # failing dies of the pattern


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("data", help="a synthetic .wdm test set (ground truth per die, what was drawn)")
    ap.add_argument("--model", default=None, help="ONNX model (default: the shipped one)")
    ap.add_argument("--views", type=int, default=None, help="test-time views (default: the card's)")
    ap.add_argument("--limit", type=int, default=None, help="only the first N wafers")
    args = ap.parse_args()
    names = list(default_taxonomy().names)
    recs = list(read_wdm(args.data))[: args.limit]
    seg = Segmenter(args.model or default_model_path(), cache=False, views=args.views)
    preds = list(seg.predict_many([r.wafer for r in recs]))

    # (class, key) -> [instances, dies, dies found, instances missed, called-as counts]
    rows: dict[tuple[str, str], list] = defaultdict(lambda: [0, 0, 0, 0, np.zeros(len(names), int)])
    for r, p in zip(recs, preds, strict=True):
        truth, pred = r.mask.labels, p.mask.labels
        failing = (r.wafer.dies == FAIL) & (truth != IGNORE)
        for drawn in filter(None, r.wafer.extra.get("patterns", "").split(",")):
            name, _, mode = drawn.partition(":")
            c = names.index(name)
            dies = failing & (truth == c)
            n = int(dies.sum())
            if n == 0:  # wholly covered by a pattern drawn on top of it
                continue
            called = np.bincount(pred[dies], minlength=len(names))
            found = int(called[c])
            size = next(f"{lo}-{hi - 1}" if hi else f"{lo}+" for lo, hi in SIZES if n >= lo and (hi is None or n < hi))
            for key in (f"mode {mode}", f"dies {size}", "all"):
                row = rows[(name, key)]
                row[0] += 1
                row[1] += n
                row[2] += found
                row[3] += found == 0
                row[4] += called
    print(f"{len(recs)} wafers, {seg.views} view(s)")
    for name in names:
        keys = [k for (c, k) in rows if c == name]
        if not keys:
            continue
        print(name)
        for key in sorted(keys, key=lambda k: (k == "all", k.startswith("dies"), k)):
            inst, n, found, missed, called = rows[(name, key)]
            others = called.copy()
            others[names.index(name)] = 0
            top = ", ".join(f"{names[i]} {others[i] / n:.0%}" for i in np.argsort(others)[::-1][:2] if others[i])
            print(
                f"  {key:22s} {inst:4d} patterns  recall {found / n:.2f}  missed entirely {missed:3d}"
                f"{'  called ' + top if top else ''}"
            )


if __name__ == "__main__":
    main()
