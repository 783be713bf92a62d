"""The training optimizer: AdamW as torch's fused kernel, the same update as the per-tensor
form it replaced, and checkpoints of either form resume in the other (runs started before the
change must still ``--resume``)."""

from __future__ import annotations

import torch
from torch import nn

from waferdesk.ml.config import TrainConfig
from waferdesk.ml.train import make_optimizer


def _net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Conv2d(4, 2, 1))


def _steps(net: nn.Module, opt: torch.optim.Optimizer, n: int, seed: int = 1) -> None:
    g = torch.Generator().manual_seed(seed)
    for _ in range(n):
        x = torch.randn(2, 3, 8, 8, generator=g)
        opt.zero_grad(set_to_none=True)
        net(x).square().mean().backward()
        opt.step()


def _unfused(net: nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    """The per-tensor AdamW of earlier runs, with the same parameter groups."""
    groups = [{**g, "params": list(g["params"])} for g in make_optimizer(net, cfg, torch.device("cpu")).param_groups]
    return torch.optim.AdamW(groups, lr=cfg.lr, foreach=False)


def test_optimizer_is_fused_adamw_with_decay_on_weights_only() -> None:
    cfg = TrainConfig(lr=1e-3, weight_decay=0.05)
    net = _net()
    opt = make_optimizer(net, cfg, torch.device("cpu"))
    assert isinstance(opt, torch.optim.AdamW) and opt.defaults["fused"] is True
    decays = {p.ndim: g["weight_decay"] for g in opt.param_groups for p in g["params"]}
    assert decays == {4: 0.05, 1: 0.0}  # convolution kernels decay, biases and BatchNorm do not


def test_fused_update_matches_the_per_tensor_update() -> None:
    cfg = TrainConfig(lr=1e-2, weight_decay=0.1)
    a, b = _net(), _net()
    _steps(a, make_optimizer(a, cfg, torch.device("cpu")), 5)
    _steps(b, _unfused(b, cfg), 5)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(pa, pb, rtol=1e-5, atol=1e-6)
    start = _net()
    assert all(not torch.equal(pa, p0) for pa, p0 in zip(a.parameters(), start.parameters(), strict=True))


def test_a_checkpoint_of_the_per_tensor_optimizer_resumes_fused() -> None:
    cfg = TrainConfig(lr=1e-2, weight_decay=0.1)
    old, ref = _net(), _net()
    old_opt, ref_opt = _unfused(old, cfg), _unfused(ref, cfg)
    _steps(old, old_opt, 3)
    _steps(ref, ref_opt, 3)
    resumed = _net()
    resumed.load_state_dict(old.state_dict())
    opt = make_optimizer(resumed, cfg, torch.device("cpu"))
    opt.load_state_dict(old_opt.state_dict())  # moments and step counts carry over
    _steps(resumed, opt, 3, seed=2)
    _steps(ref, ref_opt, 3, seed=2)
    for pa, pb in zip(resumed.parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(pa, pb, rtol=1e-5, atol=1e-6)
