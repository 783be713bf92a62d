"""Judge the verdict thresholds (``resources/taxonomy.json`` -> ``verdict``) on real maps.

The verdict is a function of the per-class failing-die counts and the number of dies, so a
model's predictions on the real WM-811K maps can be re-scored under any policy without
running the network again. :func:`predicted_counts` runs the ONNX model once and keeps the
counts; :func:`sweep` scores a grid of policies, separately on the even- and odd-indexed
maps, so that a threshold picked on one half can be checked on the other (the real maps
are a validation split: never tune to one number on it without saying so).

``python -m waferdesk.ml.policy --model M.onnx --real wm811k-val.npz`` prints the table.
"""

from __future__ import annotations

import argparse
import itertools
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from waferdesk.core.metrics import f1_scores
from waferdesk.core.results import VerdictPolicy, verdict_from_counts
from waferdesk.core.taxonomy import default_taxonomy

from .data import WM811K_TO_CLASS, load_wm811k
from .evaluate import REAL_TARGETS


def predicted_counts(model: str | Path | None, real_path: str | Path, batch_size: int = 32) -> dict[str, np.ndarray]:
    """Per-class predicted failing-die counts (N, K), dies per wafer (N,) and the WM-811K labels."""
    from waferdesk.core.inference import Segmenter

    wafers = load_wm811k(real_path)
    seg = Segmenter(model, cache=False)
    k = len(default_taxonomy())
    counts = np.zeros((len(wafers), k), dtype=np.int64)
    for i, p in enumerate(seg.predict_many(wafers, batch_size=batch_size)):
        counts[i] = p.mask.counts(k)
    return {
        "counts": counts,
        "n_dies": np.array([w.n_dies for w in wafers], dtype=np.int64),
        "labels": np.array([w.label for w in wafers]),
    }


def score(data: dict[str, np.ndarray], policy: VerdictPolicy, idx: Sequence[int] | np.ndarray) -> dict[str, Any]:
    truth = [WM811K_TO_CLASS[str(data["labels"][i])] for i in idx]
    pred = [verdict_from_counts(data["counts"][i], int(data["n_dies"][i]), policy).primary for i in idx]
    f1 = f1_scores(truth, pred, REAL_TARGETS)
    vals = [v for v in f1.values() if np.isfinite(v)]
    return {
        "accuracy": round(float(np.mean(np.array(truth) == np.array(pred))), 4),
        "macro_f1": round(float(np.mean(vals)), 4),
        "class_f1": {k: round(v, 4) for k, v in f1.items()},
    }


def sweep(
    data: dict[str, np.ndarray],
    min_share: Sequence[float] = (0.1, 0.15, 0.2, 0.25, 0.3),
    min_dies: Sequence[int] = (3, 5),
    random_density: Sequence[float] = (0.2, 0.25, 0.28, 0.3, 0.33),
) -> list[dict[str, Any]]:
    n = len(data["labels"])
    halves = {"even": np.arange(0, n, 2), "odd": np.arange(1, n, 2), "all": np.arange(n)}
    rows = []
    for s, d, r in itertools.product(min_share, min_dies, random_density):
        pol = VerdictPolicy(s, d, r)
        row: dict[str, Any] = {"min_share": s, "min_dies": d, "random_min_density": r}
        for name, idx in halves.items():
            sc = score(data, pol, idx)
            row[f"{name}_macro_f1"], row[f"{name}_accuracy"] = sc["macro_f1"], sc["accuracy"]
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="verdict thresholds on real WM-811K maps")
    p.add_argument("--model", help="ONNX model (default: the shipped one)")
    p.add_argument("--real", required=True, help="WM-811K npz")
    p.add_argument("--cache", type=Path, help="npz to keep / reuse the predicted counts")
    p.add_argument("--json", type=Path, help="write the table here")
    args = p.parse_args(argv)
    if args.cache and args.cache.is_file():
        with np.load(args.cache, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    else:
        data = predicted_counts(args.model, args.real)
        if args.cache:
            np.savez_compressed(args.cache, **data)
    rows = sweep(data)
    cur = VerdictPolicy.default()
    print(f"current policy: {cur}")
    print(" min_share min_dies rand_dens | even F1  odd F1  all F1 | all acc")
    for r in sorted(rows, key=lambda r: -r["even_macro_f1"]):
        mark = (
            " <- current"
            if (r["min_share"], r["min_dies"], r["random_min_density"])
            == (cur.min_share, cur.min_dies, cur.random_min_density)
            else ""
        )
        print(
            f" {r['min_share']:9.2f} {r['min_dies']:8d} {r['random_min_density']:9.2f} | {r['even_macro_f1']:.4f}  "
            f"{r['odd_macro_f1']:.4f}  {r['all_macro_f1']:.4f} | {r['all_accuracy']:.4f}{mark}"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
