"""Recovering a trainable network from an exported ONNX file (waferdesk/ml/recover.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from waferdesk.cli import main
from waferdesk.core.errors import ModelError
from waferdesk.ml.recover import _sample_input, onnx_difference, recover


@pytest.fixture(scope="module")
def tiny_fp16(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("models16") / "tiny16.onnx"
    assert main(["export", str(tiny_run), "--fp16", "--out", str(out)]) == 0
    return out


@pytest.mark.parametrize("which", ["fp32", "fp16"])
def test_recovered_network_reproduces_the_file(which: str, tiny_onnx: Path, tiny_fp16: Path) -> None:
    path = tiny_onnx if which == "fp32" else tiny_fp16
    model = recover(path, stats_wafers=8)
    diff, agree = onnx_difference(model, path, _sample_input(6, seed=9))
    assert diff < 1e-3, diff
    assert agree == 1.0


def test_batchnorm_is_unfused_with_the_data_statistics(tiny_onnx: Path) -> None:
    """In train mode BatchNorm normalises by the batch's own statistics. On the batch the
    statistics were measured on, those are exactly the recovered running statistics, so train
    mode must give what eval mode gives. A naive load (identity BatchNorm carrying the fused
    bias) fails this by a wide margin: training would start from a broken network."""
    model = recover(tiny_onnx, stats_wafers=8, seed=5)
    x = _sample_input(8, seed=5)
    with torch.no_grad():
        want = model.eval()(x)[0]
        got = model.train()(x)[0]
    assert float((got - want).abs().max()) < 1e-2 * float(want.abs().max())


def test_convolutions_come_back_at_a_fresh_networks_scale(tiny_onnx: Path) -> None:
    """Fused weights are W * gamma / sigma, far from the scale AdamW's steps were sized for;
    the default recovery brings each convolution before a BatchNorm back to the freshly
    initialised network's per-layer norm without changing what the network computes."""
    from waferdesk.core.modelcard import card_path_for, load_card
    from waferdesk.ml.model import build_from_card
    from waferdesk.ml.recover import _conv_bn_pairs, _row_norms

    fresh = _conv_bn_pairs(build_from_card(load_card(card_path_for(tiny_onnx))))
    scaled = _conv_bn_pairs(recover(tiny_onnx, stats_wafers=8, seed=5))
    fused = _conv_bn_pairs(recover(tiny_onnx, stats_wafers=8, seed=5, rescale=False))
    for (cf, bn), (cs, _), (cu, _) in zip(fresh, scaled, fused, strict=True):
        if bn is None:  # no BatchNorm after it: its scale matters, left as the file has it
            assert torch.equal(cs.weight, cu.weight)
            continue
        target = _row_norms(cf.weight).mean()  # another random draw than recover's own: close, not equal
        got = _row_norms(cs.weight)
        torch.testing.assert_close(got, got[0].expand(got.shape[0]), rtol=1e-4, atol=1e-6)  # every channel
        assert abs(float(got[0] / target) - 1) < 0.1, (float(got[0]), float(target))
        spread = _row_norms(cu.weight)  # without rescaling each channel keeps its own fused scale
        assert float(spread.max() / spread.min()) > 1.01
    x = _sample_input(6, seed=9)
    with torch.no_grad():
        a = recover(tiny_onnx, stats_wafers=8, seed=5).eval()(x)[0]
        b = recover(tiny_onnx, stats_wafers=8, seed=5, rescale=False).eval()(x)[0]
    assert float((a - b).abs().max()) < 1e-3 * float(b.abs().max())


def test_train_can_start_from_an_exported_model(tiny_onnx: Path, tmp_path: Path, tiny_train_args: list[str]) -> None:
    run = tmp_path / "ft"
    args = list(tiny_train_args)
    args[args.index("--steps") + 1] = "2"
    assert main(["train", "--run-dir", str(run), "--init-from", str(tiny_onnx), *args]) == 0
    cfg = json.loads((run / "config.json").read_text())
    card = json.loads(tiny_onnx.with_name("tiny.card.json").read_text())
    assert cfg["extra"]["init"]["model_version"] == card["model_version"]
    assert cfg["extra"]["init"]["sha256"] == card["sha256"]
    assert (run / "best.pt").is_file()
    history = json.loads((run / "metrics.json").read_text())
    assert [e["step"] for e in history] == [0, 2]  # the starting model is evaluated first
    out = tmp_path / "ft.onnx"
    assert main(["export", str(run), "--out", str(out)]) == 0
    lineage = json.loads(out.with_name("ft.card.json").read_text())["training"]["init"]
    assert lineage["model_version"] == card["model_version"]


def test_init_from_a_model_of_another_encoder_is_refused(tiny_onnx: Path, tmp_path: Path, capsys) -> None:
    rc = main(["train", "--run-dir", str(tmp_path / "x"), "--init-from", str(tiny_onnx), "--encoder", "resnet34",
               "--steps", "1", "--max-size", "30", "--val-count", "2"])  # fmt: skip
    err = capsys.readouterr().err
    assert rc != 0
    assert "resnet18" in err and "resnet34" in err and "Traceback" not in err


def test_a_file_that_does_not_match_the_card_is_refused(tiny_onnx: Path, tmp_path: Path) -> None:
    """A card saying resnet34 beside resnet18 weights: the convolution shapes disagree."""
    card = json.loads(tiny_onnx.with_name("tiny.card.json").read_text())
    card["architecture"]["encoder"] = "resnet34"
    (tmp_path / "m.onnx").write_bytes(tiny_onnx.read_bytes())
    (tmp_path / "m.card.json").write_text(json.dumps(card))
    with pytest.raises(ModelError, match=r"convolutions in the file|has shape"):
        recover(tmp_path / "m.onnx", stats_wafers=4)


def test_bench_builds_its_eager_baseline_from_the_onnx_file(tiny_onnx: Path, tmp_path: Path) -> None:
    """No checkpoint beside the model: ``waferdesk bench`` still measures PyTorch eager."""
    out = tmp_path / "bench.json"
    rc = main(["bench", "--model", str(tiny_onnx), "--sizes", "16", "--runs", "1", "--no-int8", "--json", str(out)])
    rep = json.loads(out.read_text())
    assert rc == 0 and rep["not_measured"] == {}
    assert [r["variant"] for r in rep["results"]] == ["onnxruntime fp32", "pytorch eager"]


def test_bench_with_weights_that_are_no_torch_file_reports_not_measured(tiny_onnx: Path, tmp_path: Path) -> None:
    """A U-Net card with --weights that are not a torch pickle: torch.load's UnpicklingError was a traceback."""
    bad = tmp_path / "notes.pt"
    bad.write_text("# hello")
    out = tmp_path / "bench.json"
    args = ["bench", "--model", str(tiny_onnx), "--sizes", "16", "--runs", "1", "--no-int8", "--weights", str(bad)]
    assert main([*args, "--json", str(out)]) == 0
    reason = json.loads(out.read_text())["not_measured"]["pytorch eager"]
    assert f"cannot use {bad} as PyTorch weights (UnpicklingError" in reason


def test_a_bad_init_from_is_one_line_and_writes_nothing(tiny_onnx: Path, tmp_path: Path, capsys) -> None:
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not protobuf")
    (tmp_path / "garbage.card.json").write_text(tiny_onnx.with_name("tiny.card.json").read_text())
    notpickle = tmp_path / "notes.pt"
    notpickle.write_text("# hello")
    for src, expect in (
        (tmp_path / "missing.pt", "no such file"),
        (notpickle, "not a WaferDesk checkpoint"),
        (garbage, "not a readable ONNX file"),
    ):
        run = tmp_path / f"run-{src.stem}"
        rc = main(["train", "--run-dir", str(run), "--init-from", str(src), "--encoder", "resnet18",
                   "--steps", "1", "--max-size", "30", "--val-count", "2"])  # fmt: skip
        err = capsys.readouterr().err
        assert rc != 0 and expect in err and "Traceback" not in err, err
        assert not (run / "config.json").exists()
