"""Re-make resources/samples/ (the wafers the app and README open out of the box).

    PYTHONPATH=. python scripts/make_samples.py --real ../shared/data/wm811k-val.npz

Real maps: hand-picked clear examples of each WM-811K label (indices into the validation
split, chosen by looking at candidate sheets). Synthetic maps: fixed seeds and indices, one
per class and mode plus a mixed wafer, small enough to keep the files at a few KB.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from waferdesk.core.formats import read_wm811k_npz, write_csv, write_g85, write_wdm
from waferdesk.core.records import WaferRecord
from waferdesk.core.synth import SynthConfig, generate_record
from waferdesk.core.wafer import WaferMap

OUT = Path(__file__).resolve().parent.parent / "resources" / "samples"
# label -> indices into wm811k-val.npz
REAL = {
    "Center": [10495],
    "Donut": [12385],
    "Edge-Loc": [11262],
    "Edge-Ring": [9124],
    "Loc": [692],
    "Scratch": [8149, 8185],
    "Random": [12303],
    "Near-full": [12422],
    "none": [1785],
}
SEED = 2024
CFG = SynthConfig(size_range=(30, 60))
# (name, classes, modes, dense random, index) -- indices picked so each pattern shows clearly
SYNTH = [
    ("edge ring", ["edge"], {"edge": "ring"}, False, 4),
    ("edge arc", ["edge"], {"edge": "arc"}, False, 3),
    ("center", ["center"], {}, False, 3),
    ("ring", ["ring"], {"ring": "full"}, False, 4),
    ("scratch", ["scratch"], {}, False, 6),
    ("particle", ["particle"], {}, False, 3),
    ("lithography", ["lithography"], {"lithography": "all"}, False, 3),
    ("etching", ["etching"], {"etching": "side"}, False, 4),
    ("random", [], {}, True, 2),
    ("mixed", ["edge", "scratch", "particle"], {"edge": "arc"}, False, 3),
]


def synthetic(spec: tuple) -> WaferRecord:
    name, classes, modes, dense, index = spec
    row = [s[0] for s in SYNTH].index(name)
    rec = generate_record(SEED, row * 1000 + index, CFG, classes=classes, modes=modes, dense_random=dense)
    return WaferRecord(rec.wafer.with_(label=name), rec.mask)


def multibin(rec: WaferRecord) -> WaferMap:
    """A tester-style map: bin 1 passes, fails spread over bins 3..9 by where they lie."""
    w = rec.wafer
    rng = np.random.default_rng(SEED)
    codes = np.where(w.dies == 1, 1, rng.choice([3, 4, 5, 7, 9], size=w.shape, p=[0.4, 0.2, 0.2, 0.1, 0.1]))
    codes = np.where(w.dies == 0, -1, codes)
    return WaferMap.from_bins(
        codes,
        {1},
        lot="DEMO01",
        wafer_id="07",
        product="WD-DEMO",
        notch=w.notch,
        die_pitch=w.die_pitch,
        source="sample",
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--real", type=Path, required=True)
    args = ap.parse_args()
    real = read_wm811k_npz(args.real)
    picked = [real[i] for idxs in REAL.values() for i in idxs]
    for label, idxs in REAL.items():
        assert all(real[i].wafer.label == label for i in idxs), label
    write_wdm(OUT / "wm811k-examples.wdm", picked)
    synth = [synthetic(s) for s in SYNTH]
    write_wdm(OUT / "synthetic-examples.wdm", synth)
    write_g85(OUT / "tester-bins.g85.xml", [multibin(synthetic(SYNTH[9]))])
    write_csv(OUT / "die-list.csv", [synthetic(SYNTH[4])])
    for f in sorted(OUT.iterdir()):
        print(f"{f.name:28} {f.stat().st_size:>7} bytes")


if __name__ == "__main__":
    main()
