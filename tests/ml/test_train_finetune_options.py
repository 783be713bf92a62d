"""``waferdesk train --ema`` and ``--freeze-bn``: the moving average is what a run evaluates and
keeps, and frozen BatchNorm keeps its statistics while the rest of the network trains."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from waferdesk.cli import main
from waferdesk.ml.config import TrainConfig
from waferdesk.ml.data import synthetic_set
from waferdesk.ml.ema import WeightAverage
from waferdesk.ml.losses import SegLoss
from waferdesk.ml.model import build_model
from waferdesk.ml.train import synth_config, validate


def _fine_tune(run: Path, parent: Path, args: list[str], *extra: str) -> dict:
    assert main(["train", "--run-dir", str(run), "--init-from", str(parent / "best.pt"), *args, *extra]) == 0
    return torch.load(run / "last.pt", weights_only=False)


def _batchnorm_stats(state: dict) -> dict[str, torch.Tensor]:
    return {k: v for k, v in state.items() if k.endswith(("running_mean", "running_var"))}


def test_weight_average_follows_its_formula() -> None:
    net = nn.Sequential(nn.Conv2d(2, 3, 1), nn.BatchNorm2d(3))
    avg = WeightAverage(net, decay=0.75)
    before = {k: v.clone() for k, v in avg.state_dict().items()}
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)
    net[1].running_mean.fill_(2.0)
    net[1].num_batches_tracked.fill_(7)
    avg.update(net)
    new = net.state_dict()
    for k, v in avg.state_dict().items():
        if v.dtype.is_floating_point:
            assert torch.allclose(v, 0.75 * before[k] + 0.25 * new[k]), k
    assert int(avg.state_dict()["1.num_batches_tracked"]) == 7  # integer buffers are copied
    assert not any(p.requires_grad for p in avg.model.parameters()) and not avg.model.training
    with pytest.raises(ValueError, match="between 0 and 1"):
        WeightAverage(net, decay=1.0)


def test_freeze_bn_keeps_the_parents_statistics_while_the_weights_train(
    tiny_run: Path, tmp_path: Path, tiny_train_args: list[str]
) -> None:
    parent = _batchnorm_stats(torch.load(tiny_run / "best.pt", weights_only=False)["model"])
    frozen = _fine_tune(tmp_path / "frozen", tiny_run, tiny_train_args, "--freeze-bn")
    free = _fine_tune(tmp_path / "free", tiny_run, tiny_train_args)
    assert frozen["config"]["freeze_bn"] is True
    for k, v in parent.items():
        assert torch.equal(frozen["model"][k], v), k
    assert any(not torch.equal(free["model"][k], v) for k, v in parent.items())  # the control moves them
    parent_weights = torch.load(tiny_run / "best.pt", weights_only=False)["model"]
    conv = "unet.encoder.conv1.weight"
    assert not torch.equal(frozen["model"][conv], parent_weights[conv])  # the weights did train


def test_ema_is_the_network_evaluated_and_kept(tiny_run: Path, tmp_path: Path, tiny_train_args: list[str]) -> None:
    run = tmp_path / "ema"
    last = _fine_tune(run, tiny_run, tiny_train_args, "--ema", "0.5", "--eval-every", "4")  # steps 0 and 4
    assert last["config"]["ema"] == 0.5 and set(last["ema"]) == set(last["model"])
    conv = "unet.encoder.conv1.weight"
    assert not torch.equal(last["ema"][conv], last["model"][conv])  # the average lags the weights
    # the last evaluation scored the average, not the raw weights
    cfg = TrainConfig(**{k: v for k, v in last["config"].items() if k in TrainConfig.__dataclass_fields__})
    val = synthetic_set(cfg.val_seed, cfg.val_count, synth_config(cfg))
    loss_fn = SegLoss(cfg.class_weights, cfg.dice_weight)
    for weights, should_match in ((last["ema"], True), (last["model"], False)):
        net = build_model(cfg.encoder)
        net.load_state_dict(weights)
        vloss, _ = validate(net, val, loss_fn, torch.device("cpu"), cfg.batch_size)
        assert math.isclose(vloss, last["history"][-1]["val_loss"], rel_tol=1e-5) is should_match
    # best.pt (and so the export) holds the average: the parent at step 0 (where the average
    # starts), or the average at step 4
    best = torch.load(run / "best.pt", weights_only=False)
    parent = torch.load(tiny_run / "best.pt", weights_only=False)["model"]
    expected = last["ema"] if best["step"] == 4 else parent
    assert best["step"] in (0, 4) and all(torch.equal(best["model"][k], v) for k, v in expected.items())


def test_the_exported_card_says_the_weights_are_an_average_under_frozen_batchnorm(
    tiny_run: Path, tmp_path: Path, tiny_train_args: list[str]
) -> None:
    run = tmp_path / "ft"
    _fine_tune(run, tiny_run, tiny_train_args, "--ema", "0.5", "--freeze-bn")
    assert main(["export", str(run), "--out", str(tmp_path / "m.onnx")]) == 0
    recipe = json.loads((tmp_path / "m.card.json").read_text())["training"]["recipe"]
    assert recipe["ema"] == 0.5 and recipe["freeze_bn"] is True
    assert recipe["init_from"] == str(tiny_run / "best.pt")


@pytest.mark.parametrize("value", ["1", "-0.5", "1.5", "nan"])
def test_a_bad_ema_decay_is_refused_before_anything_is_written(tmp_path: Path, capsys, value: str) -> None:
    run = tmp_path / "r"
    assert main(["train", "--run-dir", str(run), "--ema", value, "--steps", "1"]) == 2
    err = capsys.readouterr().err
    assert "--ema must be 0 (off) or a decay between 0 and 1" in err and "Traceback" not in err
    assert not run.exists()
