"""Outputs are written whole or not at all: a disk that fills up in the middle of a write (here a
file-size limit, as ``ulimit -f`` sets one) or Ctrl-C leaves the previous file as it was and no
temporary file behind. They were written in place: a failure left half a file (a model card
that no longer loads, a truncated PNG or JSON)."""

from __future__ import annotations

import contextlib
import shutil
import signal
from pathlib import Path

import numpy as np
import pytest

from waferdesk.cli import main
from waferdesk.core.formats import write_wdm, write_wm811k_npz
from waferdesk.core.synth import SynthConfig, generate_record
from waferdesk.core.wafer import WaferMap

resource = pytest.importorskip("resource")  # POSIX only


@contextlib.contextmanager
def disk_full_after(nbytes: int):
    """Any file this process writes fails (EFBIG, "File too large") once it would pass ``nbytes``."""
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the error instead of the signal
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, handler)


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def _one_error_naming(err: str, path: Path) -> bool:
    lines = [line for line in err.splitlines() if ": error: " in line]
    return "Traceback" not in err and len(lines) == 1 and f"{path}: " in lines[0]


def _labelled(tmp_path: Path) -> Path:
    records = [generate_record(303, i, SynthConfig(size_range=(15, 30))) for i in range(3)]
    return write_wdm(tmp_path / "test.wdm", records)


def test_evaluate_record_on_a_full_disk_keeps_the_card_whole(tiny_model: Path, tmp_path: Path, capsys) -> None:
    from waferdesk.core.modelcard import card_path_for, load_model_card

    models = tmp_path / "models"
    models.mkdir()
    model = models / "m.onnx"
    shutil.copy(tiny_model, model)
    shutil.copy(card_path_for(tiny_model), card_path_for(model))
    before = _snapshot(models)
    data = _labelled(tmp_path)
    with disk_full_after(len(before["m.card.json"])):  # the card with its metrics is longer
        assert main(["evaluate", "--model", str(model), "--data", str(data), "--real", "none", "--record"]) == 2
    assert _snapshot(models) == before  # the card as it was, no .part beside it
    assert _one_error_naming(capsys.readouterr().err, card_path_for(model))
    assert "test" not in load_model_card(model).metrics
    assert main(["evaluate", "--model", str(model), "--data", str(data), "--real", "none", "--record"]) == 0
    assert load_model_card(model).metrics["test"]["synthetic"]["n_wafers"] == 3


def test_evaluate_out_on_a_full_disk_keeps_the_previous_report(tiny_model: Path, tmp_path: Path, capsys) -> None:
    pytest.importorskip("matplotlib")
    data, out = _labelled(tmp_path), tmp_path / "report"
    args = ["evaluate", "--model", str(tiny_model), "--data", str(data), "--real", "none", "--out", str(out)]
    assert main(args) == 0
    before = _snapshot(out)
    assert sorted(before) == ["confusion_synthetic.json", "confusion_synthetic.png", "metrics.json"]
    assert len(before["metrics.json"]) > 1000
    with disk_full_after(1000):  # metrics.json fails
        assert main(args) == 2
    assert _snapshot(out) == before
    assert _one_error_naming(capsys.readouterr().err, out / "metrics.json")
    json_sizes = max(len(before["metrics.json"]), len(before["confusion_synthetic.json"]))
    assert len(before["confusion_synthetic.png"]) > 2 * json_sizes + 1000
    with disk_full_after(2 * json_sizes):  # the JSON files are written (whole), the picture fails
        assert main(args) == 2
    after = _snapshot(out)
    assert sorted(after) == sorted(before) and after["confusion_synthetic.png"] == before["confusion_synthetic.png"]
    assert _one_error_naming(capsys.readouterr().err, out / "confusion_synthetic.png")


def test_realism_png_is_whole_after_a_full_disk_or_ctrl_c(tmp_path: Path, capsys, monkeypatch) -> None:
    from PIL import Image, PngImagePlugin

    real = write_wm811k_npz(tmp_path / "real.npz", [WaferMap(np.ones((10, 12), np.uint8), label="none")])
    out_dir = tmp_path / "pictures"
    png = out_dir / "r.png"
    assert main(["realism", "--real", str(real), "--out", str(png), "--stats", "0", "--tile", "16"]) == 0
    before = _snapshot(out_dir)
    larger = ["realism", "--real", str(real), "--out", str(png), "--stats", "0", "--tile", "96"]
    with disk_full_after(len(before["r.png"])):
        assert main(larger) == 2
    assert _snapshot(out_dir) == before
    assert _one_error_naming(capsys.readouterr().err, png)

    def interrupted(im, fp, filename, *rest):  # Ctrl-C after the first bytes of the picture
        fp.write(b"\x89PNG\r\n\x1a\n")
        raise KeyboardInterrupt

    assert Image.SAVE["PNG"] is PngImagePlugin._save
    monkeypatch.setitem(Image.SAVE, "PNG", interrupted)
    assert main(larger) == 130
    assert "interrupted" in capsys.readouterr().err
    assert _snapshot(out_dir) == before


def test_bench_json_on_a_full_disk_keeps_the_previous_file(tiny_model: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "bench"
    args = ["bench", "--model", str(tiny_model), "--sizes", "16", "--runs", "1", "--no-int8"]
    assert main([*args, "--json", str(out / "b.json")]) == 0
    before = _snapshot(out)
    with disk_full_after(len(before["b.json"]) // 2):
        assert main([*args, "--json", str(out / "b.json")]) == 2
    assert _snapshot(out) == before
    assert _one_error_naming(capsys.readouterr().err, out / "b.json")
