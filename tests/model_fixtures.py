"""A tiny but valid WaferDesk ONNX model with its card, for tests (KBs, runs in microseconds).

Same I/O contract as the real ResNet-50 U-Net export (:mod:`waferdesk.core.modelcard`):
input ``input`` (N, 6, H, W), outputs ``logits`` (N, 8, H, W) and ``embedding`` (N, E), all
dynamic in N, H, W. The network: a 3x3 convolution (so a die's answer depends on its
neighbours, like the real model, and the canvas it sits on matters) with ReLU, a 1x1
convolution to the 8 class logits, and global average pooling of the hidden features as the
embedding. Weights are random but fixed by ``seed``.

Kinds:
- ``"random"``: as above.
- ``"fragile"``: the 8 logits differ only by a tiny amount, so int8 quantization flips the
  argmax (exercises the quantizer's refusal).
- ``"robust"``: the class is the number of failing pixels around a die (0..7), with a wide
  margin between classes, so the argmax survives int8 quantization (the quantizer's success
  path) while the masks still hold several classes.

Used by the inference, server and app tests (``tiny_model`` fixture in ``conftest.py``);
needs ``onnx`` (the ``ml`` extra), imported lazily.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from waferdesk.core.encoding import CHANNELS, ENCODING_VERSION
from waferdesk.core.modelcard import (
    CARD_FORMAT,
    INPUT_NAME,
    OUTPUT_EMBEDDING,
    OUTPUT_SCORES,
    ModelCard,
    card_path_for,
    sha256_file,
)
from waferdesk.core.taxonomy import default_taxonomy

HIDDEN = 16
OPSET = 17


def tiny_weights(seed: int = 0, kind: str = "random") -> dict[str, np.ndarray]:
    """The float32 weights of the tiny model (also used by tests to recompute its output)."""
    rng = np.random.default_rng(seed)
    c, k = len(CHANNELS), len(default_taxonomy())
    w1 = rng.normal(0, 0.5, (HIDDEN, c, 3, 3)).astype(np.float32)
    b1 = rng.normal(0, 0.1, HIDDEN).astype(np.float32)
    w2 = rng.normal(0, 0.5, (k, HIDDEN, 1, 1)).astype(np.float32)
    b2 = rng.normal(0, 0.1, k).astype(np.float32)
    if kind == "fragile":
        w2 = (w2[:1] + rng.normal(0, 1e-4, w2.shape)).astype(np.float32)
        b2 = np.zeros(k, np.float32)
    elif kind == "robust":
        # hidden unit 0 counts the failing pixels in the 3x3 neighbourhood (n = 0..9); class k
        # wins for n in [k - 1/8, k + 7/8) with a margin of at least s/8 at every die (block
        # averages of n are multiples of 1/4): far above int8 rounding, yet 8 classes occur
        s = 4.0
        w1 = np.zeros((HIDDEN, c, 3, 3), np.float32)
        w1[0, 0] = 1.0  # channel 0 = fail
        w1[1, 2] = 1.0  # on-wafer count, only for the embedding
        b1 = np.zeros(HIDDEN, np.float32)
        ks = np.arange(k, dtype=np.float32)
        w2 = np.zeros((k, HIDDEN, 1, 1), np.float32)
        w2[:, 0, 0, 0] = s * ks
        b2 = (-s * (ks * (ks + 1) / 2 - ks / 8)).astype(np.float32)
    elif kind != "random":
        raise ValueError(f"kind {kind!r}: use random, fragile or robust")
    return {"w1": w1, "b1": b1, "w2": w2, "b2": b2}


def make_tiny_model(
    directory: str | Path,
    fp16: bool = False,
    version: str = "tiny-1",
    *,
    seed: int = 0,
    kind: str = "random",
    name: str | None = None,
    inference: dict | None = None,
) -> Path:
    """Write ``<name>.onnx`` and its ``.card.json`` into ``directory``; return the model path.

    ``inference``: the card's ``inference`` block (e.g. ``{"views": 4}``), left out when None."""
    from onnx import helper, numpy_helper

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    path = d / f"{name or ('tiny-fp16' if fp16 else 'tiny') + ('' if kind == 'random' else '-' + kind)}.onnx"
    wts = tiny_weights(seed, kind)
    dt = np.float16 if fp16 else np.float32
    inits = [numpy_helper.from_array(v.astype(dt), n) for n, v in wts.items()]
    nodes = [
        helper.make_node("Conv", [INPUT_NAME, "w1", "b1"], ["h0"], pads=[1, 1, 1, 1], kernel_shape=[3, 3]),
        helper.make_node("Relu", ["h0"], ["h"]),
        helper.make_node("Conv", ["h", "w2", "b2"], [OUTPUT_SCORES], kernel_shape=[1, 1]),
        helper.make_node("GlobalAveragePool", ["h"], ["g"]),
        helper.make_node("Flatten", ["g"], [OUTPUT_EMBEDDING], axis=1),
    ]
    return _save(
        nodes,
        inits,
        path,
        version=version,
        arch={"name": "tiny-conv", "kind": kind, "seed": seed},
        fp16=fp16,
        inference=inference,
    )


def reference_logits(x: np.ndarray, seed: int = 0, kind: str = "random") -> tuple[np.ndarray, np.ndarray]:
    """The tiny model recomputed in numpy: encoded (N, 6, H, W) -> logits, embedding (float64)."""
    w = {k: v.astype(np.float64) for k, v in tiny_weights(seed, kind).items()}
    n, _, hh, ww = x.shape
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (1, 1), (1, 1)))
    h = np.zeros((n, HIDDEN, hh, ww))
    for dy in range(3):
        for dx in range(3):
            h += np.einsum("oc,nchw->nohw", w["w1"][:, :, dy, dx], xp[:, :, dy : dy + hh, dx : dx + ww])
    h = np.maximum(h + w["b1"][None, :, None, None], 0)
    logits = np.einsum("ko,nohw->nkhw", w["w2"][:, :, 0, 0], h) + w["b2"][None, :, None, None]
    return logits, h.mean(axis=(2, 3))


def make_layered_model(directory: str | Path) -> Path:
    """The ``robust`` tiny model with two blocks named as the torch exporter names a U-Net's
    (``/encoder/layer1/...``, ``/decoder/blocks.0/...``) between its stem and its head: both are
    identity 1x1 convolutions, but the decoder block also writes 2000x the on-wafer count into
    its last channel. That channel widens the block's int8 activation range so much that the
    neighbour counts the head reads round to 0: quantized, ``/decoder/blocks.0`` ruins the
    argmax; kept in float, the copy agrees exactly (exercises ``model quantize``'s search)."""
    from onnx import helper, numpy_helper

    path = Path(directory) / "layered.onnx"
    path.parent.mkdir(parents=True, exist_ok=True)
    w = tiny_weights(0, "robust")
    eye = np.eye(HIDDEN, dtype=np.float32).reshape(HIDDEN, HIDDEN, 1, 1)
    wide = eye.copy()
    wide[HIDDEN - 1, 1, 0, 0] = 2000.0  # channel 1 counts on-wafer neighbours (0..9)
    zeros = np.zeros(HIDDEN, np.float32)
    inits = [numpy_helper.from_array(v, n) for n, v in {**w, "eye": eye, "wide": wide, "zeros": zeros}.items()]
    nodes = [
        helper.make_node(
            "Conv", [INPUT_NAME, "w1", "b1"], ["h0"], "/encoder/conv1/Conv", pads=[1, 1, 1, 1], kernel_shape=[3, 3]
        ),
        helper.make_node("Relu", ["h0"], ["h"], "/encoder/conv1/Relu"),
        helper.make_node("Conv", ["h", "eye", "zeros"], ["e0"], "/encoder/layer1/Conv", kernel_shape=[1, 1]),
        helper.make_node("Relu", ["e0"], ["e"], "/encoder/layer1/Relu"),
        helper.make_node("Conv", ["e", "wide", "zeros"], ["d0"], "/decoder/blocks.0/Conv", kernel_shape=[1, 1]),
        helper.make_node("Relu", ["d0"], ["d"], "/decoder/blocks.0/Relu"),
        helper.make_node("Conv", ["d", "w2", "b2"], [OUTPUT_SCORES], "/segmentation_head/Conv", kernel_shape=[1, 1]),
        helper.make_node("GlobalAveragePool", ["h"], ["g"], "/pool"),
        helper.make_node("Flatten", ["g"], [OUTPUT_EMBEDDING], "/flatten", axis=1),
    ]
    return _save(nodes, inits, path, version="layered-1", arch={"name": "tiny-layered", "kind": "layered", "seed": 0})


def _save(
    nodes: list, inits: list, path: Path, *, version: str, arch: dict, fp16: bool = False, inference: dict | None = None
) -> Path:
    """Check and write the graph at ``path`` with its model card; return ``path``."""
    import onnx
    from onnx import TensorProto, helper

    et = TensorProto.FLOAT16 if fp16 else TensorProto.FLOAT
    k = len(default_taxonomy())
    graph = helper.make_graph(
        nodes,
        "waferdesk-tiny",
        [helper.make_tensor_value_info(INPUT_NAME, et, ["N", len(CHANNELS), "H", "W"])],
        [
            helper.make_tensor_value_info(OUTPUT_SCORES, et, ["N", k, "H", "W"]),
            helper.make_tensor_value_info(OUTPUT_EMBEDDING, et, ["N", HIDDEN]),
        ],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="waferdesk-tests")
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)
    card = ModelCard.from_json(
        {
            "format": CARD_FORMAT,
            "model_version": version,
            "architecture": {**arch, "encoder": "none"},
            "classes": list(default_taxonomy().names),
            "encoding": {"version": ENCODING_VERSION, "channels": list(CHANNELS)},
            "sha256": sha256_file(path),
            "onnx": {
                "opset": OPSET,
                "precision": "fp16" if fp16 else "fp32",
                "embedding_dim": HIDDEN,
                "input": INPUT_NAME,
                "outputs": [OUTPUT_SCORES, OUTPUT_EMBEDDING],
            },
            "training": {"data": "none (test fixture)"},
            "metrics": {},
            **({"inference": inference} if inference is not None else {}),
        }
    )
    card.save(card_path_for(path))
    return path
