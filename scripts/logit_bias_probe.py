"""Would a per-class logit bias, fitted for mIoU, help the shipped model? (docs/ml.md, "Day 7")

    .venv/bin/python scripts/logit_bias_probe.py --cal cal4242.wdm --test test303.wdm

IoU rewards a different decision than argmax: a rare class that loses its border dies to
``random`` might gain from a small bonus. This fits one additive bias per class (coordinate
ascent over a grid, a few rounds) on a *calibration* set of fresh synthetic wafers (make one
with ``waferdesk synth --seed S`` for a seed never used in training or testing), then applies
it, unchanged, to the held-out test set. The biases act on log-probabilities, which for an
argmax is the same as acting on the logits. Nothing is written: this is a probe, and its
answer was no.
"""

import argparse
import time

import numpy as np

from waferdesk.core.formats import read_wdm
from waferdesk.core.inference.segmenter import Segmenter
from waferdesk.core.modelcard import default_model_path
from waferdesk.core.taxonomy import IGNORE, default_taxonomy
from waferdesk.core.wafer import FAIL

NAMES = list(default_taxonomy().names)
K = len(NAMES)


def failing_die_scores(seg: Segmenter, path: str, limit: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Log-probabilities (n, K) and true classes (n,) of every labelled failing die."""
    recs = list(read_wdm(path))[:limit]
    logp, truth = [], []
    for r, p in zip(recs, seg.predict_many([r.wafer for r in recs]), strict=True):
        t = r.mask.labels
        f = (r.wafer.dies == FAIL) & (t != IGNORE)
        logp.append(np.log(np.clip(p.probs[:, f], 1e-9, 1.0)).T)
        truth.append(t[f])
    return np.concatenate(logp).astype(np.float32), np.concatenate(truth).astype(np.int64)


def miou(logp: np.ndarray, truth: np.ndarray, bias: np.ndarray) -> tuple[float, np.ndarray]:
    y = (logp + bias).argmax(1)
    cm = np.bincount(truth * K + y, minlength=K * K).reshape(K, K)
    tp = np.diag(cm)
    iou = tp / np.maximum(cm.sum(0) + cm.sum(1) - tp, 1)
    return float(iou.mean()), iou


def fit(logp: np.ndarray, truth: np.ndarray, rounds: int = 3) -> tuple[np.ndarray, float]:
    bias = np.zeros(K, np.float32)
    best = miou(logp, truth, bias)[0]
    for _ in range(rounds):
        for c in range(K):
            for v in np.linspace(-2, 2, 41):
                trial = bias.copy()
                trial[c] = v
                m = miou(logp, truth, trial)[0]
                if m > best + 1e-6:
                    best, bias = m, trial
    return bias, best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cal", required=True, help="calibration .wdm (a fresh synthetic seed)")
    ap.add_argument("--test", required=True, help="held-out test .wdm")
    ap.add_argument("--cal-limit", type=int, default=1000)
    ap.add_argument("--test-limit", type=int, default=None)
    ap.add_argument("--views", type=int, default=None, help="test-time views (default: the card's)")
    args = ap.parse_args()
    seg = Segmenter(default_model_path(), cache=False, views=args.views)
    t0 = time.perf_counter()
    cal = failing_die_scores(seg, args.cal, args.cal_limit)
    test = failing_die_scores(seg, args.test, args.test_limit)
    print(
        f"{len(cal[1])} calibration and {len(test[1])} test failing dies, {seg.views} view(s),",
        f"{time.perf_counter() - t0:.0f} s",
    )
    bias, cal_after = fit(*cal)
    print("bias", " ".join(f"{n} {b:+.1f}" for n, b in zip(NAMES, bias, strict=True)))
    print(f"calibration mIoU {miou(*cal, np.zeros(K))[0]:.4f} -> {cal_after:.4f}")
    before, iou0 = miou(*test, np.zeros(K))
    after, iou1 = miou(*test, bias)
    print(f"test mIoU        {before:.4f} -> {after:.4f}")
    print(" ".join(f"{n[:5]} {a:.3f}->{b:.3f}" for n, a, b in zip(NAMES, iou0, iou1, strict=True)))


if __name__ == "__main__":
    main()
