"""``waferdesk realism`` as a user runs it: a tiny labelled npz in, a side-by-side PNG out."""

from __future__ import annotations

import numpy as np
from PIL import Image

from waferdesk.cli.main import main
from waferdesk.core.formats import write_wm811k_npz
from waferdesk.core.realism import LABELS
from waferdesk.core.render import fail_pass_picture
from waferdesk.core.wafer import WaferMap


def _real(tmp_path):
    full = np.full((12, 12), 2, np.uint8)  # a "Near-full" map: every die fails
    full[0, 0] = 0
    clean = np.ones((10, 14), np.uint8)  # a "none" map without a single fail
    maps = [WaferMap(full, label="Near-full"), WaferMap(clean, label="none"), WaferMap(clean, label=None)]
    return write_wm811k_npz(tmp_path / "tiny.npz", maps)


def test_realism_draws_real_and_synthetic_rows(tmp_path, capsys) -> None:
    out = tmp_path / "realism.png"
    code = main(
        [
            "realism",
            "--real",
            str(_real(tmp_path)),
            "--out",
            str(out),
            "--per-label",
            "2",
            "--tile",
            "32",
            "--stats",
            "5",
        ]
    )
    assert code == 0
    img = np.asarray(Image.open(out).convert("RGB"))
    fail = tuple(fail_pass_picture(np.array([[2]]))[0, 0])
    passed = tuple(fail_pass_picture(np.array([[1]]))[0, 0])
    # layout of realism_picture: margin 10, labels 150 px, header 30, tiles 32 px + 4 px gaps
    row_y = {label: 10 + 30 + i * 36 for i, label in enumerate(LABELS)}
    x_real, x_syn = 160, 160 + 2 * 32 + 4 + 28

    def tile(label: str, x: int) -> np.ndarray:
        return img[row_y[label] : row_y[label] + 32, x : x + 32].reshape(-1, 3)

    near_full = tile("Near-full", x_real)
    assert (near_full == fail).all(axis=1).sum() == (12 * 12 - 1) * 2 * 2  # the real map, 2 px per die
    none = tile("none", x_real)
    assert (none == passed).all(axis=1).sum() == 10 * 14 * 2 * 2 and not (none == fail).all(axis=1).any()
    centre = tile("Center", x_real)  # no real Center map in this file: only a note, no wafer
    assert not ((centre == passed).all(axis=1) | (centre == fail).all(axis=1)).any()
    for label in LABELS:  # every synthetic tile holds a wafer
        assert ((tile(label, x_syn) == passed).all(axis=1) | (tile(label, x_syn) == fail).all(axis=1)).mean() > 0.1
    text = capsys.readouterr().out
    assert "Near-full" in text and "wrote" in text


def test_realism_rejects_unlabelled_input(tmp_path, capsys) -> None:
    path = write_wm811k_npz(tmp_path / "u.npz", [WaferMap(np.ones((5, 5), np.uint8))])
    assert main(["realism", "--real", str(path), "--out", str(tmp_path / "r.png")]) == 2
    assert "no map carries a WM-811K label" in capsys.readouterr().err
    assert main(["realism", "--real", str(tmp_path / "missing.npz"), "--out", str(tmp_path / "r.png")]) == 2
    assert "missing.npz: cannot open" in capsys.readouterr().err
