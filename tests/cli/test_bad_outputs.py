"""Outputs that cannot be written (a folder where a file goes, a file where a folder goes) are
one line naming the path with exit status 2, and leave no half-written temporary file."""

from __future__ import annotations

import numpy as np

from waferdesk.cli import main
from waferdesk.core.formats import write_wdm, write_wm811k_npz
from waferdesk.core.synth import generate
from waferdesk.core.wafer import WaferMap


def _one_line(err: str) -> bool:
    """One error line (progress bars aside), no stack trace."""
    return "Traceback" not in err and len([line for line in err.splitlines() if ": error: " in line]) == 1


def test_synth_into_a_folder_is_one_line_and_leaves_no_part_file(tmp_path, capsys) -> None:
    out = tmp_path / "runs.wdm"
    out.mkdir()
    assert main(["synth", "--count", "2", "--out", str(out), "--workers", "1"]) == 2
    err = capsys.readouterr().err
    assert _one_line(err) and f"{out}: cannot write" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs.wdm"]  # no runs.wdm.part left behind


def test_coco_outputs_into_a_folder_are_one_line_and_leave_no_part_file(tmp_path, capsys) -> None:
    labels = write_wdm(tmp_path / "labels.wdm", list(generate(2, seed=7)))
    assert main(["coco", "export", str(labels), "--out", str(tmp_path / "c.json")]) == 0
    capsys.readouterr()
    (tmp_path / "d.json").mkdir()
    assert main(["coco", "export", str(labels), "--out", str(tmp_path / "d.json")]) == 2
    err = capsys.readouterr().err
    assert _one_line(err) and "d.json: cannot write" in err
    (tmp_path / "d.wdm").mkdir()
    args = ["coco", "import", str(tmp_path / "c.json"), "--wafers", str(labels), "--out", str(tmp_path / "d.wdm")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert _one_line(err) and "d.wdm: cannot write" in err
    assert not list(tmp_path.glob("*.part"))


def test_an_output_the_system_refuses_is_one_line_naming_it(tmp_path, tiny_model, capsys) -> None:
    """OSErrors from writing (here: a folder where the file goes) used to end in a traceback, exit 1."""
    real = write_wm811k_npz(tmp_path / "real.npz", [WaferMap(np.ones((10, 12), np.uint8), label="none")])
    png = tmp_path / "pic.png"
    png.mkdir()
    assert main(["realism", "--real", str(real), "--out", str(png), "--stats", "0"]) == 2
    err = capsys.readouterr().err
    assert _one_line(err) and f"{png}: Is a directory" in err

    wafers = write_wdm(tmp_path / "w.wdm", list(generate(2, seed=8)))
    out = tmp_path / "pred"
    (out / "embeddings.npy.raw").mkdir(parents=True)
    assert main(["predict", str(wafers), "--out", str(out), "--model", str(tiny_model), "--no-cache"]) == 2
    err = capsys.readouterr().err
    assert _one_line(err) and "embeddings.npy.raw: Is a directory" in err


def test_wdm_outputs_refuse_another_suffix(tmp_path, capsys) -> None:
    """synth and coco import write a .wdm archive; named x.csv it used to be a zip posing as a CSV."""
    assert main(["synth", "--count", "2", "--out", str(tmp_path / "x.csv"), "--workers", "1"]) == 2
    err = capsys.readouterr().err
    assert _one_line(err) and "--out must name a .wdm file" in err
    labels = write_wdm(tmp_path / "labels.wdm", list(generate(2, seed=7)))
    assert main(["coco", "export", str(labels), "--out", str(tmp_path / "c.json")]) == 0
    capsys.readouterr()
    args = ["coco", "import", str(tmp_path / "c.json"), "--wafers", str(labels), "--out", str(tmp_path / "l.csv")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert _one_line(err) and "--out must name a .wdm file" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.json", "labels.wdm"]


def test_negative_seeds_are_one_line(tmp_path, capsys) -> None:
    """numpy refuses negative seeds with a ValueError that ended in a traceback (exit 1)."""
    real = write_wm811k_npz(tmp_path / "real.npz", [WaferMap(np.ones((10, 12), np.uint8), label="none")])
    for args in (
        ["synth", "--count", "2", "--seed", "-1", "--out", str(tmp_path / "s.wdm"), "--workers", "1"],
        ["realism", "--real", str(real), "--out", str(tmp_path / "r.png"), "--seed", "-3"],
    ):
        assert main(args) == 2
        err = capsys.readouterr().err
        assert _one_line(err) and "--seed must be 0 or more, got -" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["real.npz"]


def test_counts_out_of_range_are_refused_in_one_line_before_writing(tmp_path, tiny_model, capsys) -> None:
    """--threads 0 or below meant "all physical cores", synth --workers below 0 "one process",
    realism --stats below 0 "no numbers": all silently. Now one line naming flag and value."""
    real = write_wm811k_npz(tmp_path / "real.npz", [WaferMap(np.ones((10, 12), np.uint8), label="none")])
    wafers = write_wdm(tmp_path / "w.wdm", list(generate(2, seed=8)))
    model = ["--model", str(tiny_model)]
    pred = ["predict", str(wafers), "--out", str(tmp_path / "pred"), *model]
    for args in (  # the flag and its value last
        [*pred, "--no-cache", "--threads", "0"],
        [*pred, "--threads", "-2"],
        ["bench", *model, "--sizes", "16", "--runs", "1", "--json", str(tmp_path / "b.json"), "--threads", "0"],
        ["model", "quantize", *model, "--out", str(tmp_path / "q.onnx"), "--threads", "-1"],
        ["synth", "--count", "2", "--out", str(tmp_path / "s.wdm"), "--workers", "-1"],
        ["realism", "--real", str(real), "--out", str(tmp_path / "r.png"), "--stats", "-5"],
    ):
        flag, value = args[-2:]
        assert main(args) == 2, args
        err = capsys.readouterr().err
        assert _one_line(err) and f"{flag} must be " in err and f"got {value}" in err, (args, err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["real.npz", "w.wdm"]  # nothing written
