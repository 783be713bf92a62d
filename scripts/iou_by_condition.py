"""Per-class IoU of a model on a synthetic test set, binned by the wafer's background fail rate
and its size: where the model's errors are (docs/ml.md, "what limits it").

    .venv/bin/python scripts/iou_by_condition.py test303.wdm [--views 1] [--limit N]
        [--upscale-max-side 200]

The background bins come from what the generator recorded in each wafer
(``extra["background"]``); the size bins follow the encoding's switch from two pixels per die
(longest side <= 40 dies) to one. ``--upscale-max-side`` is an experiment, not a setting: it
changes the encoding's threshold for this process only, to ask whether running larger wafers at
two pixels per die helps a model trained with the shipped threshold (it did not: docs/ml.md,
"Day 7").
"""

import argparse
from collections import defaultdict

import numpy as np

from waferdesk.core import encoding
from waferdesk.core.formats import read_wdm
from waferdesk.core.inference.segmenter import Segmenter
from waferdesk.core.modelcard import default_model_path
from waferdesk.core.taxonomy import IGNORE, default_taxonomy
from waferdesk.core.wafer import FAIL

ORDER = ("bg<0.05", "bg<0.12", "bg<0.25", "bg dense", "size<=40", "size<=80", "size<=120", "size>120", "all")


def bins(rec) -> tuple[str, str]:
    bg = float(rec.wafer.extra.get("background", 0))
    size = max(rec.wafer.dies.shape)
    background = "bg<0.05" if bg < 0.05 else "bg<0.12" if bg < 0.12 else "bg<0.25" if bg < 0.25 else "bg dense"
    return background, (
        "size<=40" if size <= 40 else "size<=80" if size <= 80 else "size<=120" if size <= 120 else "size>120"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("data", help="a synthetic .wdm test set (ground truth per die)")
    ap.add_argument("--model", default=None, help="ONNX model (default: the shipped one)")
    ap.add_argument("--views", type=int, default=None, help="test-time views (default: the card's)")
    ap.add_argument("--limit", type=int, default=None, help="only the first N wafers")
    ap.add_argument("--upscale-max-side", type=int, default=None, help="experiment: see the docstring")
    args = ap.parse_args()
    if args.upscale_max_side is not None:
        encoding.UPSCALE_MAX_SIDE = args.upscale_max_side
    names = list(default_taxonomy().names)
    recs = list(read_wdm(args.data))[: args.limit]
    seg = Segmenter(args.model or default_model_path(), cache=False, views=args.views)
    preds = list(seg.predict_many([r.wafer for r in recs]))

    stats = {k: defaultdict(lambda: np.zeros((len(names), 2))) for k in ("background", "size", "all")}
    counts: dict[str, int] = defaultdict(int)
    for r, p in zip(recs, preds, strict=True):
        t = r.mask.labels
        f = (r.wafer.dies == FAIL) & (t != IGNORE)
        y = p.mask.labels
        for key, bin_ in zip(("background", "size", "all"), (*bins(r), "all"), strict=True):
            counts[bin_] += 1
            for c in range(len(names)):
                tc, pc = (t == c) & f, (y == c) & f
                stats[key][bin_][c] += [(tc & pc).sum(), (tc | pc).sum()]
    print(f"{len(recs)} wafers, {seg.views} view(s), encoding upscale max side {encoding.UPSCALE_MAX_SIDE}")
    for key in ("background", "size", "all"):
        print(key)
        for bin_ in sorted(stats[key], key=ORDER.index):
            a = stats[key][bin_]
            iou = [a[c, 0] / a[c, 1] if a[c, 1] else np.nan for c in range(len(names))]
            print(
                f"  {bin_:10s} ({counts[bin_]:4d}) mIoU {np.nanmean(iou):.3f} ",
                " ".join(
                    f"{names[c][:5]} {iou[c]:.2f}" if a[c, 1] else f"{names[c][:5]}  -  " for c in range(len(names))
                ),
            )


if __name__ == "__main__":
    main()
