"""A training step whose loss or gradient is not finite is skipped, not learnt: one NaN batch
must not write NaN into every weight (and the weight average) and silently waste the rest of a
long run; a run that keeps producing them stops with a clear error."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from waferdesk.cli import main
from waferdesk.ml import train as train_mod
from waferdesk.ml.losses import SegLoss
from waferdesk.ml.model import build_model


def _nan_on_calls(monkeypatch: pytest.MonkeyPatch, bad: set[int] | None) -> None:
    """SegLoss returns NaN on the given training calls (1-based; None: on every call)."""
    real = SegLoss.forward
    calls = {"n": 0}

    def forward(self, logits, target):
        loss, parts = real(self, logits, target)
        if torch.is_grad_enabled():  # training steps only, not validation
            calls["n"] += 1
            if bad is None or calls["n"] in bad:
                return loss * math.nan, {"ce": math.nan, "dice": math.nan}
        return loss, parts

    monkeypatch.setattr(SegLoss, "forward", forward)


def _all_finite(state: dict) -> bool:
    return all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())


def test_nan_losses_are_skipped_and_counted(tmp_path: Path, tiny_train_args, monkeypatch, capsys) -> None:
    _nan_on_calls(monkeypatch, {2, 3})
    run = tmp_path / "run"
    assert main(["train", "--run-dir", str(run), *tiny_train_args, "--ema", "0.9"]) == 0
    printed = capsys.readouterr()
    err = printed.out + printed.err
    assert "step 2: non-finite loss on a" in err and "step 3: non-finite loss on a" in err
    ck = torch.load(run / "last.pt", weights_only=False)
    assert ck["step"] == 4 and ck["skipped"] == 2
    assert _all_finite(ck["model"]) and _all_finite(ck["ema"])
    summary = json.loads((run / "summary.json").read_text())
    assert summary["skipped_nonfinite_steps"] == 2 and summary["steps"] == 4
    assert all(math.isfinite(h["val"]["miou"]) for h in json.loads((run / "metrics.json").read_text()))


def test_a_nan_gradient_leaves_the_weights_untouched(tmp_path: Path, tiny_train_args, monkeypatch, capsys) -> None:
    real = torch.nn.utils.clip_grad_norm_
    calls = {"n": 0}
    before: dict[str, torch.Tensor] = {}

    def clip(params, max_norm, *a, **k):
        params = list(params)
        calls["n"] += 1
        if calls["n"] == 1:  # the first step's gradient overflows
            before.update({str(i): p.detach().clone() for i, p in enumerate(params)})
            for p in params:
                if p.grad is not None:
                    p.grad.fill_(math.inf)
        return real(params, max_norm, *a, **k)

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", clip)
    run = tmp_path / "run"
    assert main(["train", "--run-dir", str(run), *tiny_train_args, "--steps", "1", "--eval-every", "1"]) == 0
    assert "step 1: non-finite gradient on a" in capsys.readouterr().out
    ck = torch.load(run / "last.pt", weights_only=False)
    assert ck["skipped"] == 1 and _all_finite(ck["model"])
    net = build_model("resnet18")
    net.load_state_dict(ck["model"])
    for i, p in enumerate(net.parameters()):
        assert torch.equal(p, before[str(i)])  # no optimiser step was taken


def test_a_diverged_run_stops_with_a_clear_error(tmp_path: Path, tiny_train_args, monkeypatch, capsys) -> None:
    _nan_on_calls(monkeypatch, None)
    monkeypatch.setattr(train_mod, "MAX_NONFINITE_STEPS", 3)
    run = tmp_path / "run"
    rc = main(["train", "--run-dir", str(run), *tiny_train_args, "--steps", "10", "--eval-every", "10"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "training diverged at step 3: 3 steps in a row had a non-finite loss or gradient" in err
    assert "Traceback" not in err
