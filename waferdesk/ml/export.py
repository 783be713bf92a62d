"""ONNX export: one self-contained file + its model card, checked against the torch model.

The file:
- input ``input`` (N, 6, H, W) float32 (the encoding's channels), outputs ``logits``
  (N, 8, H, W) float32 and ``embedding`` (N, E) float32; batch and spatial axes dynamic
  (H, W multiples of 32, as the encoding makes them); opset 17; weights inside the file (no
  external data).
- precision ``fp32``, or with ``--fp16`` ``fp16-weights``: every weight is stored as a
  float16 initializer followed by a Cast to float32. ONNX Runtime folds those Casts when it
  creates the session, so the graph it runs is the fp32 graph with rounded weights: half the
  file size, float32 input/output, and the CPU keeps its fast fp32 kernels (a fully fp16
  graph runs through cast-wrapped fp16 kernels on CPUs, which measured slower here).
  ``fp16_mode="full"`` makes the fully fp16 graph (float32 I/O, Casts at the ends) for GPU
  deployments that want fp16 arithmetic.

The card (``<stem>.card.json``, :class:`waferdesk.core.modelcard.ModelCard`) records the
architecture, classes, encoding, how the training data was made (generator seed, config and
a sha256 of the generator's source), the training run's metrics, the export settings and the
file's sha256. :func:`agreement` compares the exported file with the torch model.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from waferdesk.core.encoding import CHANNELS, ENCODING_VERSION, decode, encode_batch
from waferdesk.core.errors import ModelError
from waferdesk.core.modelcard import (
    INPUT_NAME,
    OUTPUT_EMBEDDING,
    OUTPUT_SCORES,
    ModelCard,
    card_path_for,
    sha256_file,
)
from waferdesk.core.taxonomy import default_taxonomy
from waferdesk.core.wafer import FAIL

from .model import WaferUnet

OPSET = 17
PRECISIONS = ("fp32", "fp16-weights", "fp16")


def _to_fp16_weights(model: Any) -> Any:
    """Store float32 initializers as float16 + a Cast node back to float32 (see module doc)."""
    from onnx import TensorProto, helper, numpy_helper

    g = model.graph
    casts, keep, new = [], [], []
    for init in g.initializer:
        if init.data_type == TensorProto.FLOAT:
            arr = numpy_helper.to_array(init)
            new.append(numpy_helper.from_array(arr.astype(np.float16), init.name + "__fp16"))
            casts.append(helper.make_node("Cast", [init.name + "__fp16"], [init.name], to=TensorProto.FLOAT))
        else:
            keep.append(init)
    del g.initializer[:]
    g.initializer.extend(keep + new)
    nodes = list(g.node)
    del g.node[:]
    g.node.extend(casts + nodes)
    return model


def export_onnx(model: WaferUnet, out: str | Path, fp16: bool = False, fp16_mode: str = "weights") -> dict[str, Any]:
    """Write ``model`` to ``out`` as one ONNX file; returns the card's ``onnx`` section (sha later)."""
    import onnx

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    model = model.float().eval().cpu()
    x = torch.zeros(1, len(CHANNELS), 64, 64)
    tmp = out.with_name(out.name + ".part")
    dyn = {
        INPUT_NAME: {0: "batch", 2: "height", 3: "width"},
        OUTPUT_SCORES: {0: "batch", 2: "height", 3: "width"},
        OUTPUT_EMBEDDING: {0: "batch"},
    }
    t0 = time.perf_counter()
    # The TorchScript exporter: ~2 s for a ResNet-50 U-Net and exact dynamic axes; the
    # torch.export-based one took 20x longer here for the same graph.
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
        torch.onnx.export(
            model,
            (x,),
            str(tmp),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_SCORES, OUTPUT_EMBEDDING],
            dynamic_axes=dyn,
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )
    m = onnx.load(str(tmp))
    precision = "fp32"
    if fp16:
        if fp16_mode == "weights":
            m = _to_fp16_weights(m)
            precision = "fp16-weights"
        elif fp16_mode == "full":
            from onnxruntime.transformers.float16 import convert_float_to_float16

            m = convert_float_to_float16(m, keep_io_types=True)
            precision = "fp16"
        else:
            raise ValueError(f"fp16_mode must be 'weights' or 'full', got {fp16_mode!r}")
    m.producer_name = "waferdesk"
    onnx.checker.check_model(m)
    onnx.save_model(m, str(tmp), save_as_external_data=False)
    tmp.replace(out)
    import onnxruntime

    return {
        "file": out.name,
        "opset": OPSET,
        "precision": precision,
        "precision_note": {
            "fp32": "float32 weights and compute",
            "fp16-weights": (
                "weights stored as float16, each followed by a Cast to float32 that ONNX Runtime folds at "
                "session creation: compute, input and outputs are float32"
            ),
            "fp16": "float16 weights and compute; float32 input and outputs (Casts at the graph's ends)",
        }[precision],
        "input": {"name": INPUT_NAME, "dtype": "float32", "shape": ["batch", len(CHANNELS), "height", "width"]},
        "outputs": {
            OUTPUT_SCORES: {"dtype": "float32", "shape": ["batch", model.n_classes, "height", "width"]},
            OUTPUT_EMBEDDING: {"dtype": "float32", "shape": ["batch", model.embedding_dim]},
        },
        "embedding_dim": model.embedding_dim,
        "spatial_multiple": 32,
        "external_data": False,
        "exporter": "torch.onnx.export (TorchScript), do_constant_folding",
        "export_s": round(time.perf_counter() - t0, 1),
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
        "python": platform.python_version(),
    }


def onnx_session(path: str | Path) -> Any:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


@torch.no_grad()
def agreement(model: WaferUnet, onnx_path: str | Path, grids: Sequence[np.ndarray]) -> dict[str, Any]:
    """Exported vs torch model on the same encoded wafers: max |logit difference| (canvas), max
    |embedding difference|, and argmax agreement of the per-die classes on failing dies."""
    sess = onnx_session(onnx_path)
    model = model.float().eval().cpu()
    max_diff = emb_diff = 0.0
    agree = total = 0
    for g in grids:
        x, places = encode_batch([g])
        ref_logits, ref_emb = (t.numpy() for t in model(torch.from_numpy(x)))
        out_logits, out_emb = sess.run([OUTPUT_SCORES, OUTPUT_EMBEDDING], {INPUT_NAME: x})
        max_diff = max(max_diff, float(np.abs(out_logits - ref_logits).max()))
        emb_diff = max(emb_diff, float(np.abs(out_emb - ref_emb).max()))
        fail = g == FAIL
        a = decode(ref_logits[0], places[0]).argmax(0)[fail]
        b = decode(out_logits[0], places[0]).argmax(0)[fail]
        agree += int((a == b).sum())
        total += int(fail.sum())
    return {
        "wafers": len(grids),
        "failing_dies": total,
        "max_abs_logit_diff": max_diff,
        "max_abs_embedding_diff": emb_diff,
        "argmax_agreement": agree / total if total else 1.0,
    }


def resolve_checkpoint(src: str | Path) -> Path:
    """A run directory means its ``best.pt`` (else ``last.pt``); a file is taken as is."""
    p = Path(src)
    if p.is_dir():
        for name in ("best.pt", "last.pt"):
            if (p / name).is_file():
                return p / name
        raise ModelError(f"{p}: no best.pt or last.pt in this run directory")
    if not p.is_file():
        raise ModelError(f"{p}: no such run directory or checkpoint")
    return p


def _packed_lineage(packed: dict[str, Any]) -> dict[str, Any]:
    """What :mod:`waferdesk.ml.transfer` did to the weights before this export (not the tensor list)."""
    return {
        "weights": "rounded to float16 to travel back from a GPU machine, then float32 again",
        "fp16_tensors": len(packed.get("fp16", ())),
        "from": packed.get("from"),
        "torch": packed.get("torch"),
    }


def make_card(
    model: WaferUnet, ckpt: dict[str, Any], ckpt_path: Path, onnx_info: dict[str, Any], onnx_path: Path
) -> ModelCard:
    cfg = ckpt.get("config", {})
    run = ckpt_path.parent
    summary: dict[str, Any] = {}
    if (run / "summary.json").is_file():
        import json

        summary = json.loads((run / "summary.json").read_text(encoding="utf-8"))
    extra = cfg.get("extra", {})
    step = int(ckpt.get("step", 0))
    metrics_entry = ckpt.get("metrics") or (ckpt.get("history") or [{}])[-1]
    training = {
        "run": run.name,
        "checkpoint": ckpt_path.name,
        "step": step,
        "steps_planned": cfg.get("steps"),
        "wafers_seen": metrics_entry.get("wafers_seen"),
        "train_time_s": summary.get("train_time_s", metrics_entry.get("time_s")),
        "device": summary.get("device"),
        "data": (
            {"file": cfg["data"]}
            if cfg.get("data")
            else {
                "source": "waferdesk.core.synth generator, made on the fly (every wafer new)",
                "generator_seed": cfg.get("seed"),
                "generator_config": {
                    "size_range": [cfg.get("min_size"), cfg.get("max_size")],
                    **({"pattern_weights": cfg["pattern_weights"]} if cfg.get("pattern_weights") else {}),
                    "others": "defaults",
                },
                "synth_sha256": extra.get("synth_sha256"),
                "augmentation": "8 dihedral symmetries of the die grid, random 0-2 die empty margins",
                "validation_seed": cfg.get("val_seed"),
                "validation_wafers": cfg.get("val_count"),
            }
        ),
        "git_commit": extra.get("git_commit"),
        **({"init": extra["init"]} if extra.get("init") else {}),  # fine-tuned: the model it started from
        **({"packed": _packed_lineage(ckpt["packed"])} if ckpt.get("packed") else {}),  # came back as fp16
        "selection": "checkpoint with the best synthetic validation mIoU (real WM-811K maps watched, never used)",
        "recipe": {
            k: cfg.get(k)
            for k in (
                "encoder",
                "steps",
                "batch_size",
                "min_batch",
                "lr",
                "weight_decay",
                "warmup",
                "schedule",
                "dice_weight",
                "class_weights",
                "eval_every",
                "amp",
                "init_from",
                "ema",  # the exported weights are the moving average when set
                "freeze_bn",
            )
        },
    }
    metrics: dict[str, Any] = {}
    if metrics_entry:
        metrics["validation"] = {
            "source": f"training run validation at step {metrics_entry.get('step')} (torch, fp32)",
            "synthetic": metrics_entry.get("val"),
            "real_subset": metrics_entry.get("real"),
        }
    arch = model.architecture()
    version = f"unet-{arch['encoder']}-{run.name}-s{step}"
    return ModelCard(
        version=version,
        architecture=arch,
        classes=list(default_taxonomy().names),
        encoding_version=ENCODING_VERSION,
        channels=list(CHANNELS),
        sha256=sha256_file(onnx_path),
        onnx={**onnx_info, "size_bytes": onnx_path.stat().st_size},
        training=training,
        metrics=metrics,
        raw={"created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
    )


def export_checkpoint(
    src: str | Path,
    out: str | Path,
    fp16: bool = False,
    fp16_mode: str = "weights",
    check_wafers: int = 12,
    views: int = 1,
) -> tuple[Path, ModelCard]:
    """Export a run's best checkpoint (or a checkpoint file) to ``out`` with its card beside it.

    ``views`` > 1 writes the card's ``inference.views``: every consumer then averages the
    model over that many dihedral views by default (test-time augmentation)."""
    from waferdesk.core.synth import generate_record

    from .train import load_checkpoint_model

    ckpt_path = resolve_checkpoint(src)
    model, ck = load_checkpoint_model(ckpt_path)
    out = Path(out)
    info = export_onnx(model, out, fp16=fp16, fp16_mode=fp16_mode)
    grids = [generate_record(7_777, i).wafer.dies for i in range(check_wafers)]
    info["check"] = {"data": f"synthetic seed 7777, wafers 0..{check_wafers - 1}", **agreement(model, out, grids)}
    card = make_card(model, ck, ckpt_path, info, out)
    if views > 1:
        card.raw["inference"] = {"views": views}
    card.save(card_path_for(out))
    return out, card
