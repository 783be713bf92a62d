"""Turn an exported ONNX model back into a trainable network.

Why: run directories (``last.pt`` / ``best.pt``) are working files, while the ONNX file and
its card are what ships and what a fab keeps. To fine-tune a deployed model (on approved
annotations, or to continue the shipped model's training on another machine) the weights
must come back out of the ONNX file.

The exporter folds every BatchNorm into the convolution before it (eval mode: ``y = W x + b``),
so the file holds 64 convolutions with a bias and no BatchNorm at all. Loading those into the
network as-is and training with BatchNorm in train mode would normalise each convolution's
output by *batch* statistics the fused weights never saw, and wreck the model on the first
step. :func:`recover` therefore *un-fuses* with data: it runs a few synthetic batches, measures
the mean ``mu`` and standard deviation ``sigma`` of every convolution's output (without its
bias), and sets the BatchNorm that follows to ``running_mean = mu``,
``running_var = sigma^2 - eps``, ``weight = sigma``, ``bias = b + mu``. In eval mode that is
exactly ``W x + b`` again (the recovered network reproduces the ONNX file to float precision),
and in train mode the batch statistics are close to ``mu, sigma``, so training resumes smoothly.

Un-fusing leaves the convolutions at the fused scale ``W * gamma / sigma``: measured on the
shipped model, their per-channel weight norms are a median 0.16x (down to 0.01x) of a freshly
initialised network's. Behind a BatchNorm a convolution's scale does not change the function,
but it sets the step size: AdamW moves every weight by about ``lr`` per step, so a weight ten
times smaller turns ten times faster, and fine-tuning at any learning rate first knocks the
model back (validation mIoU 0.695 -> 0.655 after 500 steps at a peak of only 1e-4). With
``rescale`` (the default) every such convolution is brought back to the fresh network's
per-layer norm, per output channel, and its BatchNorm's running statistics are scaled with it
(``mean * c``, ``var`` such that ``var + eps`` is ``c^2`` times the old): the same function in
eval mode, and in train mode up to ``eps``.

Convolutions are matched by execution order: the exporter writes ONNX nodes in the order the
traced forward ran them, which is the order forward hooks see the network's ``Conv2d``
modules, and every pair's weight shape is checked. :func:`onnx_difference` compares a
recovered network with its file through ONNX Runtime (tests/ml/test_recover.py).
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from waferdesk.core.encoding import encode_batch
from waferdesk.core.errors import ModelError
from waferdesk.core.modelcard import ModelCard, card_path_for, check_compatible, load_card

from .model import WaferUnet, build_from_card

STATS_WAFERS = 48
"""Synthetic wafers whose activations give each BatchNorm its statistics."""


def onnx_convolutions(path: str | Path) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """(weight, bias) of every Conv node in graph order, as float32 (fp16 stores are cast)."""
    import onnx
    from onnx import numpy_helper

    try:
        g = onnx.load(str(path)).graph
    except Exception as exc:  # protobuf DecodeError and friends
        raise ModelError(f"{path}: not a readable ONNX file ({type(exc).__name__}: {exc})") from None
    values: dict[str, np.ndarray] = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    # fp16-weight files store "<name>__fp16" and Cast it to "<name>": follow the Casts
    for node in g.node:
        if node.op_type == "Cast" and node.input[0] in values:
            values[node.output[0]] = values[node.input[0]].astype(np.float32)
    convs = []
    for node in g.node:
        if node.op_type != "Conv":
            continue
        try:
            w = values[node.input[1]].astype(np.float32)
            b = values[node.input[2]].astype(np.float32) if len(node.input) > 2 and node.input[2] else None
        except KeyError as exc:
            raise ModelError(
                f"{path}: Conv node {node.name!r} has a computed weight {exc}; not an exported WaferDesk model"
            ) from exc
        convs.append((w, b))
    return convs


def _conv_bn_pairs(model: nn.Module) -> list[tuple[nn.Conv2d, nn.BatchNorm2d | None]]:
    """Every Conv2d in execution order, with the BatchNorm2d that follows it (or None)."""
    order: list[nn.Conv2d] = []
    hooks = [
        m.register_forward_hook(lambda mod, _i, _o: order.append(mod))
        for m in model.modules()
        if isinstance(m, nn.Conv2d)
    ]
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, model.in_channels, 64, 64))  # type: ignore[operator]
    finally:
        for h in hooks:
            h.remove()
    # a BatchNorm follows its conv in the module tree (Conv2dReLU: conv, bn, relu; ResNet:
    # conv1 -> bn1, downsample[0] -> downsample[1]); find it by the parent's child order
    follower: dict[int, nn.BatchNorm2d] = {}
    for parent in model.modules():
        kids = list(parent.named_children())
        for (_, a), (_, b) in itertools.pairwise(kids):
            if isinstance(a, nn.Conv2d) and isinstance(b, nn.BatchNorm2d):
                follower[id(a)] = b
        names = dict(kids)
        for name, mod in kids:  # torchvision ResNet blocks: convN is followed by bnN
            if isinstance(mod, nn.Conv2d) and name.startswith("conv"):
                bn = names.get("bn" + name[4:])
                if isinstance(bn, nn.BatchNorm2d):
                    follower[id(mod)] = bn
    return [(c, follower.get(id(c))) for c in order]


def _sample_input(n: int, seed: int) -> torch.Tensor:
    """Encoded synthetic wafers on one 64x64 canvas (30-32 dies across), for activation stats."""
    from waferdesk.core.synth import SynthConfig, generate

    recs = list(generate(n, seed=seed, cfg=SynthConfig(size_range=(26, 31))))
    x, _ = encode_batch([r.wafer.dies for r in recs])
    return torch.from_numpy(x)


def recover(
    onnx_path: str | Path,
    card: ModelCard | None = None,
    stats_wafers: int = STATS_WAFERS,
    seed: int = 404,
    rescale: bool = True,
) -> WaferUnet:
    """The network of an exported ONNX file, with BatchNorm un-fused and (``rescale``) each
    convolution before a BatchNorm brought back to a freshly initialised network's scale
    (see the module doc)."""
    onnx_path = Path(onnx_path)
    card = card or load_card(card_path_for(onnx_path))
    check_compatible(card, where=str(onnx_path))
    model = build_from_card(card)
    pairs = _conv_bn_pairs(model)
    convs = onnx_convolutions(onnx_path)
    if len(convs) != len(pairs):
        raise ModelError(
            f"{onnx_path}: {len(convs)} convolutions in the file, "
            f"{len(pairs)} in a {card.architecture.get('encoder')} U-Net"
        )
    fused_bias: dict[int, torch.Tensor] = {}  # conv -> the file's bias, for the BatchNorm after it
    init_norm = {id(conv): _row_norms(conv.weight).mean() for conv, _ in pairs}  # fresh network's scale
    with torch.no_grad():
        for k, ((w, b), (conv, bn)) in enumerate(zip(convs, pairs, strict=True)):
            if tuple(w.shape) != tuple(conv.weight.shape):
                raise ModelError(
                    f"{onnx_path}: convolution {k} has shape {w.shape}, the network expects {tuple(conv.weight.shape)}"
                )
            conv.weight.copy_(torch.from_numpy(w))
            bias = torch.from_numpy(b) if b is not None else torch.zeros(w.shape[0])
            if bn is None:
                if conv.bias is None:
                    raise ModelError(f"{onnx_path}: convolution {k} has a bias in the file but none in the network")
                conv.bias.copy_(bias)
                continue
            if conv.bias is not None:
                conv.bias.zero_()
            fused_bias[id(conv)] = bias
            # identity BatchNorm + the bias: the eval-mode network now equals the file
            bn.running_mean.zero_()
            bn.running_var.fill_(1.0 - bn.eps)
            bn.weight.fill_(1.0)
            bn.bias.copy_(bias)
        # measure each convolution's output (bias-free, as the BatchNorm sees it)
        stats: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

        def hook(mod: nn.Module, _inp: Any, out: torch.Tensor) -> None:
            stats[id(mod)] = (out.mean(dim=(0, 2, 3)), out.var(dim=(0, 2, 3), unbiased=False))

        hooks = [conv.register_forward_hook(hook) for conv, bn in pairs if bn is not None]
        try:
            model.eval()(_sample_input(stats_wafers, seed))
        finally:
            for h in hooks:
                h.remove()
        for conv, bn in pairs:
            if bn is None:
                continue
            mu, var = stats[id(conv)]
            # weight = sqrt(running_var + eps) cancels the division exactly, whatever the floor
            bn.running_mean.copy_(mu)
            bn.running_var.copy_((var - bn.eps).clamp_min(1e-8))
            bn.weight.copy_(torch.sqrt(bn.running_var + bn.eps))
            bn.bias.copy_(fused_bias[id(conv)] + mu)
            if rescale:
                _rescale(conv, bn, init_norm[id(conv)])
    return model.eval()


def _row_norms(w: torch.Tensor) -> torch.Tensor:
    return w.detach().flatten(1).norm(dim=1)


def _rescale(conv: nn.Conv2d, bn: nn.BatchNorm2d, target: torch.Tensor) -> None:
    """Scale ``conv``'s output channels to norm ``target`` and ``bn``'s statistics with them,
    so that the eval-mode function is unchanged (module doc)."""
    norms = _row_norms(conv.weight)
    c = torch.where(norms > 1e-12, target / norms.clamp_min(1e-12), torch.ones_like(norms))
    conv.weight.mul_(c.view(-1, 1, 1, 1))
    bn.running_mean.mul_(c)
    bn.running_var.copy_((c * c * (bn.running_var + bn.eps) - bn.eps).clamp_min(1e-8))


def onnx_difference(model: WaferUnet, onnx_path: str | Path, x: torch.Tensor) -> tuple[float, float]:
    """(max |logit difference|, argmax agreement) between ``model`` and the ONNX file on ``x``."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    want = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
    with torch.no_grad():
        got = model.eval()(x)[0].numpy()
    return float(np.abs(got - want).max()), float((got.argmax(1) == want.argmax(1)).mean())
