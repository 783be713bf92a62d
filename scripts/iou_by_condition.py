"""Per-class IoU of the shipped model on a synthetic test set, binned by the wafer's background
fail rate and its size: where the model's errors are (docs/ml.md, "what limits it").

    .venv/bin/python scripts/iou_by_condition.py test303.wdm

The bins come from what the generator recorded in each wafer (``extra["background"]``).
"""

import sys
from collections import defaultdict

import numpy as np

from waferdesk.core.formats import read_wdm
from waferdesk.core.inference.segmenter import Segmenter
from waferdesk.core.modelcard import default_model_path
from waferdesk.core.taxonomy import IGNORE, default_taxonomy
from waferdesk.core.wafer import FAIL

tax = default_taxonomy()
names = list(tax.names)
recs = list(read_wdm(sys.argv[1]))
seg = Segmenter(default_model_path(), cache=False)
preds = list(seg.predict_many([r.wafer for r in recs]))


def binner(r):
    bg = float(r.wafer.extra.get("background", 0))
    size = max(r.wafer.dies.shape)
    return ("bg<0.05" if bg < 0.05 else "bg<0.12" if bg < 0.12 else "bg<0.25" if bg < 0.25 else "bg dense"), (
        "size<40" if size < 40 else "size<100" if size < 100 else "size>=100"
    )


stats = {k: defaultdict(lambda: np.zeros((len(names), 2))) for k in ("bg", "size")}
for r, p in zip(recs, preds, strict=True):
    t = r.mask.labels
    f = (r.wafer.dies == FAIL) & (t != IGNORE)
    y = p.mask.labels
    b = binner(r)
    for key, bin_ in zip(("bg", "size"), b, strict=True):
        for c in range(len(names)):
            tc, pc = (t == c) & f, (y == c) & f
            stats[key][bin_][c] += [(tc & pc).sum(), (tc | pc).sum()]
for key in ("bg", "size"):
    print(key)
    for bin_ in sorted(stats[key]):
        a = stats[key][bin_]
        print(
            f"  {bin_:10s}",
            " ".join(
                f"{names[c][:5]} {a[c, 0] / a[c, 1]:.2f}" if a[c, 1] else f"{names[c][:5]}  -  "
                for c in range(len(names))
            ),
        )
