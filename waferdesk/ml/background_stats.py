"""How scattered fails look, in three numbers: the generator's background is tuned to these.

- fail rate of the wafer;
- clumping: the mean number of failing 4-neighbours of failing dies, divided by what
  independent fails at the same rate would give (1.0 = independent, >1 = clumped);
- rim excess: fail rate in the outer 20 % of the radius over the rate inside it.

``python -m waferdesk.ml.background_stats --real wm811k-val.npz`` prints the quartiles for
real ``none`` and ``Random`` wafers beside the generator's no-pattern and dense-random
wafers (docs/ml.md quotes the result).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import numpy as np

from waferdesk.core.encoding import wafer_frame
from waferdesk.core.synth import SynthConfig, generate_record
from waferdesk.core.wafer import FAIL, NO_DIE


def texture_stats(dies: np.ndarray) -> tuple[float, float, float]:
    on, f = dies != NO_DIE, dies == FAIL
    n = int(on.sum())
    rate = float(f.sum()) / max(n, 1)
    pf, pon = np.pad(f, 1), np.pad(on, 1)
    fail_nb = pf[:-2, 1:-1].astype(int) + pf[2:, 1:-1] + pf[1:-1, :-2] + pf[1:-1, 2:]
    on_nb = pon[:-2, 1:-1].astype(int) + pon[2:, 1:-1] + pon[1:-1, :-2] + pon[1:-1, 2:]
    clump = float(fail_nb[f].mean() / max((rate * on_nb[f]).mean(), 1e-9)) if f.any() else 1.0
    cr, cc, ar, ac = wafer_frame(dies)
    rows, cols = np.mgrid[0 : dies.shape[0], 0 : dies.shape[1]]
    r = np.hypot((rows + 0.5 - cr) / ar, (cols + 0.5 - cc) / ac)
    outer, inner = on & (r > 0.8), on & (r <= 0.8)
    rim = (float(f[outer].mean()) + 1e-3) / (float(f[inner].mean()) + 1e-3) if outer.any() and inner.any() else 1.0
    return rate, clump, rim


def quartile_table(grids: Sequence[np.ndarray]) -> dict[str, list[float]]:
    s = np.array([texture_stats(g) for g in grids])
    q = (10, 50, 90)
    return {
        "fail_rate_q10_50_90": np.round(np.percentile(s[:, 0], q), 3).tolist(),
        "clumping_q25_50_75": np.round(np.percentile(s[:, 1], (25, 50, 75)), 2).tolist(),
        "rim_excess_q25_50_75": np.round(np.percentile(s[:, 2], (25, 50, 75)), 2).tolist(),
    }


def compare(real_path: str, n: int = 1500, seed: int = 9) -> dict[str, dict[str, list[float]]]:
    from .data import load_wm811k, wm811k_labels

    labels = wm811k_labels(real_path)
    cfg = SynthConfig()
    out = {}
    for lab, dense in (("none", False), ("Random", True)):
        idx = np.flatnonzero(labels == lab)[:n]
        out[f"real {lab}"] = quartile_table([w.dies for w in load_wm811k(real_path, idx)])
        syn = [generate_record(seed, i, cfg, classes=[], dense_random=dense).wafer.dies for i in range(min(n, 600))]
        if not dense:  # the generator's clean wafers (no fails) have no texture to compare
            syn = [g for g in syn if (g == FAIL).sum() > 0.02 * (g != NO_DIE).sum()]
        out[f"synthetic {'dense random' if dense else 'no pattern'}"] = quartile_table(syn)
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--real", required=True, help="WM-811K npz")
    args = p.parse_args(argv)
    for name, table in compare(args.real).items():
        print(f"{name:28s} " + "  ".join(f"{k} {v}" for k, v in table.items()))


if __name__ == "__main__":
    main()
