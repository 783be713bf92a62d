"""Why patterned real WM-811K maps get the verdict ``none``: what the model put on their
failing dies, and which verdict rule turned it into ``none`` (docs/ml.md, "what limits it").

    .venv/bin/python scripts/real_misses.py [MODEL.onnx] [WM811K.npz]

For each patterned label it prints how many maps were called ``none``, their failing dies,
the dies the model gave the label's own class, the share it called random, the fail density,
and the rule that failed: no systematic die at all, fewer than ``min_dies``, or under
``min_share`` of the failing dies (resources/taxonomy.json -> verdict).
"""

import sys
from collections import Counter

import numpy as np

from waferdesk.core.inference.segmenter import Segmenter
from waferdesk.core.modelcard import default_model_path
from waferdesk.core.results import VerdictPolicy
from waferdesk.core.taxonomy import default_taxonomy
from waferdesk.ml.data import WM811K_TO_CLASS, load_wm811k, wm811k_labels

model = sys.argv[1] if len(sys.argv) > 1 else default_model_path()
real = sys.argv[2] if len(sys.argv) > 2 else "../shared/data/wm811k-val.npz"
tax = default_taxonomy()
policy = VerdictPolicy.default(tax)
random_index = tax.names.index("random")
patterned = [lab for lab, cls in WM811K_TO_CLASS.items() if cls not in ("none", "random", "etching")]
labels = wm811k_labels(real)
maps = load_wm811k(real, [i for i, lab in enumerate(labels) if lab in patterned])
preds = list(Segmenter(model, cache=False).predict_many(maps))

print(f"model {model}; verdict policy {policy}")
print(f"{'label':9} {'called none':>12} {'fails':>6} {'own class':>9} {'random':>7} {'density':>8}  rule that failed")
for lab in patterned:
    own = tax.names.index(WM811K_TO_CLASS[lab])
    rows, why = [], Counter()
    for w, p in zip(maps, preds, strict=True):
        if w.label != lab or str(p.verdict) != "none":
            continue
        counts = p.mask.counts(len(tax))  # predictions label failing dies only
        rows.append((w.n_fail, counts[own], counts[random_index] / max(1, w.n_fail), w.n_fail / w.n_dies))
        largest = max(counts[c.index] for c in tax.classes if c.systematic)
        why["no systematic die" if largest == 0 else f"< {policy.min_dies} dies" if largest < policy.min_dies
            else f"< {policy.min_share:.0%} of fails"] += 1  # fmt: skip
    n = sum(1 for w in maps if w.label == lab)
    if not rows:
        print(f"{lab:9} {0:>5} of {n:<5}")
        continue
    med = np.median(np.array(rows, dtype=float), axis=0)
    rules = ", ".join(f"{k} {v}" for k, v in why.most_common())
    print(f"{lab:9} {len(rows):>5} of {n:<5} {med[0]:6.0f} {med[1]:9.0f} {med[2]:7.0%} {med[3]:8.1%}  {rules}")
print("(medians over the maps called none)")
