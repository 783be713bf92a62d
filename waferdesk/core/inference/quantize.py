"""A statically quantized int8 copy of a model for fast CPU inference, kept only if it agrees.

Calibration runs the float model on synthetic wafers (:mod:`waferdesk.core.synth`, nothing
downloaded) to learn each activation's range; weights are quantized per output channel
(QDQ format, the one ONNX Runtime's CPU kernels fuse). The layers that produce the outputs
(class logits, embedding) stay in float: an argmax between two close classes is exactly
what 8-bit logits would flip. So does the stem, the first convolution, which reads the
encoded input itself: quantizing its input puts the coordinate planes (-1..1) on a grid of
1/127 and the error reaches every later layer (on the shipped model the stem alone moved
agreement from 99.85 % to 99.94 %). The copy is then checked against the original on a separate
set of synthetic wafers: the class argmax must agree on at least ``min_agreement`` (99.9 %)
of the failing dies, or the file is deleted and :class:`QuantizationRefusedError` raised.

``onnx`` and ``onnxruntime.quantization`` are imported here only, lazily.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..encoding import encode_batch
from ..errors import ModelError
from ..modelcard import (
    OUTPUT_EMBEDDING,
    OUTPUT_SCORES,
    ModelCard,
    card_path_for,
    load_model_card,
    sha256_file,
)
from ..synth import SynthConfig, generate
from ..wafer import FAIL, WaferMap
from .quantize_search import Trial, greedy_float_groups, layer_groups

MIN_AGREEMENT = 0.999
CALIB_SEED = 90_001
CHECK_SEED = 90_002
SELECT_SEED = 90_003
"""Seed of the search's selection set: never the gate's check set (:mod:`.quantize_search`)."""
SEARCH_GROUPS = 3
"""Default for the most blocks the search keeps in float."""
CALIB_STRIDE = 4
"""Calibration wafers per range reduction (memory bound); ``calib`` is rounded up to a multiple."""
SYNTH_SIZES = (15, 120)
"""Die-grid sizes of calibration/check wafers: the bulk of real maps (~26 across) up to large ones."""


class QuantizationRefusedError(ModelError):
    """The int8 copy disagrees with the original too often; it was not kept (``report`` says how much)."""

    def __init__(self, message: str, report: QuantizeReport | None = None) -> None:
        super().__init__(message)
        self.report = report


@dataclass
class QuantizeReport:
    path: Path | None
    agreement: float
    failing_dies: int
    check_wafers: int
    calib_wafers: int
    min_agreement: float
    kept: bool
    seconds: float
    size_bytes: int
    parent_size_bytes: int
    float_groups: list[str] = field(default_factory=list)
    """Blocks kept in float by the search (empty: the plain copy, or no search)."""
    plain_agreement: float | None = None
    """The plain copy's agreement on the check set, when it missed the gate and a search ran."""
    search: list[Trial] = field(default_factory=list)
    """Every search trial, measured on the selection set."""

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["path"] = str(self.path) if self.path else None
        d["search"] = [t.to_json() for t in self.search]
        return d


def _require_quantization() -> tuple[Any, Any]:
    try:
        import onnx
        from onnxruntime import quantization as q
    except ImportError as exc:
        raise ModelError(
            f"quantizing needs the onnx package and onnxruntime.quantization ({exc}); "
            "install them with: pip install 'waferdesk[ml]' (or pip install onnx)"
        ) from None
    return onnx, q


def synthetic_wafers(count: int, seed: int) -> list[WaferMap]:
    return [r.wafer for r in generate(count, seed=seed, cfg=SynthConfig(size_range=SYNTH_SIZES))]


def upcast_fp16(model: Any) -> Any:
    """An fp32 copy of an fp16 ONNX model (initializers, constants, casts, I/O types).

    Static quantization calibrates in float32; a model shipped in fp16 for size is
    upcast first (exactly: every fp16 value is representable in fp32).
    """
    onnx, _ = _require_quantization()
    from onnx import TensorProto, numpy_helper

    m = onnx.ModelProto()
    m.CopyFrom(model)
    fp16, fp32 = TensorProto.FLOAT16, TensorProto.FLOAT

    def fix_tensor(t: Any) -> None:
        if t.data_type == fp16:
            t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t).astype(np.float32), t.name))

    def walk(graph: Any) -> None:
        for t in graph.initializer:
            fix_tensor(t)
        for vi in [*graph.input, *graph.output, *graph.value_info]:
            if vi.type.tensor_type.elem_type == fp16:
                vi.type.tensor_type.elem_type = fp32
        for node in graph.node:
            for a in node.attribute:
                if a.name == "to" and a.i == fp16:
                    a.i = fp32
                if a.type == onnx.AttributeProto.TENSOR:
                    fix_tensor(a.t)
                if a.type == onnx.AttributeProto.GRAPH:
                    walk(a.g)
                for g in a.graphs:
                    walk(g)

    walk(m.graph)
    return m


class _Reader:
    """Feeds encoded synthetic wafers, one per run, to ONNX Runtime's calibrator.

    It supports ``set_range`` so that the calibrator works in strides (``CalibStridedMinMax``):
    ranges are reduced after every few wafers instead of keeping every intermediate tensor of
    every calibration wafer in memory (gigabytes for a ResNet-50 U-Net).
    """

    def __init__(self, wafers: list[WaferMap], input_name: str, on_step: Callable[[], None] | None) -> None:
        self.wafers = wafers
        self.input_name = input_name
        self.on_step = on_step
        self._it: Iterator[WaferMap] = iter(wafers)

    def __len__(self) -> int:
        return len(self.wafers)

    def set_range(self, start_index: int, end_index: int) -> None:
        self._it = iter(self.wafers[start_index:end_index])

    def get_next(self) -> dict[str, np.ndarray] | None:
        w = next(self._it, None)
        if w is None:
            return None
        if self.on_step:
            self.on_step()
        x, _ = encode_batch([w.dies])
        return {self.input_name: x}

    def rewind(self) -> None:  # pragma: no cover - used by some calibrators
        self._it = iter(self.wafers)


def argmax_agreement(original: Any, candidate: Any, wafers: list[WaferMap]) -> tuple[float, int]:
    """Share of failing dies where two segmenters pick the same class, and the number of them."""
    return agreement_with(failing_labels(original, wafers), candidate, wafers)


def failing_labels(segmenter: Any, wafers: list[WaferMap]) -> list[np.ndarray | None]:
    """The class a segmenter gives each failing die of each wafer (the reference side of a check,
    computed once when several copies are compared with the same original); None for a wafer
    without failing dies."""
    return [segmenter.predict(w).mask.labels[w.dies == FAIL] if (w.dies == FAIL).any() else None for w in wafers]


def agreement_with(reference: list[np.ndarray | None], candidate: Any, wafers: list[WaferMap]) -> tuple[float, int]:
    """:func:`argmax_agreement` against labels from :func:`failing_labels`."""
    same = total = 0
    for ref, w in zip(reference, wafers, strict=True):
        if ref is None:
            continue
        same += int((candidate.predict(w).mask.labels[w.dies == FAIL] == ref).sum())
        total += len(ref)
    return (same / total if total else 1.0), total


def output_nodes(model: Any) -> list[str]:
    """Names of the nodes that write the model's outputs (kept in float)."""
    outs = {OUTPUT_SCORES, OUTPUT_EMBEDDING}
    names = []
    for i, node in enumerate(model.graph.node):
        if outs & set(node.output):
            if not node.name:
                node.name = f"waferdesk_output_{i}"
            names.append(node.name)
    return names


def stem_nodes(model: Any) -> list[str]:
    """Name of the first convolution, the one that reads the network input (kept in float).
    ONNX graphs are topologically sorted, so it is the first Conv node."""
    for i, node in enumerate(model.graph.node):
        if node.op_type == "Conv":
            if not node.name:
                node.name = f"waferdesk_stem_{i}"
            return [node.name]
    return []


def quantize_model(
    model_path: str | Path,
    out_path: str | Path,
    *,
    calib: int = 64,
    check: int = 200,
    min_agreement: float = MIN_AGREEMENT,
    per_channel: bool = True,
    reduce_range: bool = False,
    keep_outputs_float: bool = True,
    keep_stem_float: bool = True,
    search: int = SEARCH_GROUPS,
    threads: int | None = None,
    on_progress: Callable[[str], None] | None = None,
) -> QuantizeReport:
    """Write an int8 copy of ``model_path`` (and its card) to ``out_path`` if it agrees enough.

    When the plain copy's argmax agreement on the failing dies of ``check`` synthetic wafers is
    below ``min_agreement``, up to ``search`` blocks of the network are chosen to stay in float
    (:mod:`.quantize_search`, measured on a separate selection set) and that copy faces the same
    gate. Raises :class:`QuantizationRefusedError` (after deleting the copy) when the last copy
    tried is still below it. The copy is made and checked as ``<stem>.part.onnx`` beside
    ``out_path`` and moved there only when kept, so a refused, failed or interrupted run leaves
    whatever ``out_path`` held before untouched.
    """
    from .segmenter import Segmenter

    onnx, q = _require_quantization()
    t0 = time.perf_counter()
    src, out = Path(model_path), Path(out_path)
    if calib < 1 or check < 1 or search < 0:
        raise ModelError(
            f"--calib and --check must be at least 1 and --search at least 0, got {calib}, {check} and {search}"
        )
    if out.resolve() == src.resolve():
        raise ModelError(f"{out}: the int8 copy must not overwrite its parent model")
    card = load_model_card(src)
    out.parent.mkdir(parents=True, exist_ok=True)
    # written and checked beside OUT under another name, moved onto OUT only once kept: a refused,
    # failed or interrupted run neither leaves an unchecked model at OUT nor deletes what was there
    stage = out.with_name(f"{out.stem}.part{out.suffix}")
    calib = -(-calib // CALIB_STRIDE) * CALIB_STRIDE
    say = on_progress or (lambda _msg: None)

    def segmenter(path: Path) -> Any:
        return Segmenter(path, providers="cpu", threads=threads, cache=False, warmup=False)

    try:
        with tempfile.TemporaryDirectory(prefix="waferdesk-quant-") as tmp:
            model = onnx.load(str(src))
            if any(i.type.tensor_type.elem_type == onnx.TensorProto.FLOAT16 for i in model.graph.input) or any(
                t.data_type == onnx.TensorProto.FLOAT16 for t in model.graph.initializer
            ):
                say("upcasting the fp16 model to fp32 for calibration")
                model = upcast_fp16(model)
            exclude = (output_nodes(model) if keep_outputs_float else []) + (
                stem_nodes(model) if keep_stem_float else []
            )
            fp32 = Path(tmp) / "fp32.onnx"
            onnx.save(model, str(fp32))
            prepared = Path(tmp) / "prepared.onnx"
            try:
                q.quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
            except Exception:  # pre-processing is an optimisation; quantize the plain graph if it fails
                prepared = fp32
            input_name = model.graph.input[0].name
            quantize = _Quantizer(q, prepared, input_name, calib, per_channel, reduce_range, Path(tmp), say)
            original = segmenter(src)
            check_wafers = synthetic_wafers(check, CHECK_SEED)

            def gate(float_nodes: list[str]) -> tuple[float, int, ModelCard]:
                quantize(stage, float_nodes)
                q_card = _int8_card(card, stage, calib, per_channel, reduce_range, float_nodes)
                q_card.save(card_path_for(stage))
                say(f"checking argmax agreement on {check} synthetic wafers")
                return (*agreement_with(reference, segmenter(stage), check_wafers), q_card)

            reference = failing_labels(original, check_wafers)
            agreement, n_dies, q_card = gate(exclude)
            plain, chosen, trials = None, [], []
            if agreement < min_agreement and search:
                plain = agreement
                groups = layer_groups(onnx.load(str(prepared)), exclude)
                say(
                    f"plain copy agrees on {agreement:.4%} (< {min_agreement:.1%}); searching which of "
                    f"{len(groups)} blocks to keep in float, on {check} other synthetic wafers"
                )
                select_wafers = synthetic_wafers(check, SELECT_SEED)
                select_ref = failing_labels(original, select_wafers)
                trial_path = Path(tmp) / "trial.onnx"

                def trial(names: list[str]) -> float:
                    float_nodes = exclude + [n for g in names for n in groups[g]]
                    quantize(trial_path, float_nodes)
                    trial_card = _int8_card(card, trial_path, calib, per_channel, reduce_range, float_nodes)
                    trial_card.save(card_path_for(trial_path))
                    return agreement_with(select_ref, segmenter(trial_path), select_wafers)[0]

                chosen, _, trials = greedy_float_groups(list(groups), trial, min_agreement, search, say)
                if chosen:
                    exclude = exclude + [n for g in chosen for n in groups[g]]
                    agreement, n_dies, q_card = gate(exclude)
        report = QuantizeReport(
            path=out,
            agreement=agreement,
            failing_dies=n_dies,
            check_wafers=check,
            calib_wafers=calib,
            min_agreement=min_agreement,
            kept=agreement >= min_agreement,
            seconds=time.perf_counter() - t0,
            size_bytes=stage.stat().st_size,
            parent_size_bytes=src.stat().st_size,
            float_groups=chosen,
            plain_agreement=plain,
            search=trials,
        )
        if not report.kept:  # the staged copy is removed below; OUT was never touched
            report.path = None
            tried = f" (with {' + '.join(chosen)} in float)" if chosen else ""
            raise QuantizationRefusedError(
                f"{out}: int8 copy{tried} agrees with {src.name} on {agreement:.4%} of {n_dies} failing dies "
                f"({check} synthetic wafers), below the required {min_agreement:.1%}; not kept",
                report,
            )
        q_card.onnx["quantization"]["check"] = {
            "wafers": check,
            "seed": CHECK_SEED,
            "failing_dies": n_dies,
            "argmax_agreement": round(agreement, 6),
            "min_agreement": min_agreement,
        }
        if plain is not None:
            q_card.onnx["quantization"]["search"] = {
                "plain_agreement": round(plain, 6),
                "selection": {"wafers": check, "seed": SELECT_SEED},
                "float_groups": chosen,
                "trials": [t.to_json() for t in trials],
            }
        q_card.metrics = {"argmax_agreement_with_parent": round(agreement, 6)}
        q_card.save(card_path_for(stage))
        os.replace(stage, out)
        os.replace(card_path_for(stage), card_path_for(out))
        return report
    finally:
        _remove(stage)  # the staged copy, whatever happened; OUT is touched only by the moves above


class _Quantizer:
    """``quantize_static`` with this model's settings, calibrating once: the ranges are cached
    (``calibration_cache_path``, where the installed ONNX Runtime has it) and reused by every
    copy the search makes, which differ only in the nodes kept float."""

    def __init__(
        self,
        q: Any,
        prepared: Path,
        input_name: str,
        calib: int,
        per_channel: bool,
        reduce_range: bool,
        tmp: Path,
        say: Callable[[str], None],
    ) -> None:
        self.q, self.prepared, self.input_name, self.calib = q, prepared, input_name, calib
        self.per_channel, self.reduce_range, self.say = per_channel, reduce_range, say
        self.wafers = synthetic_wafers(calib, CALIB_SEED)
        cached = "calibration_cache_path" in inspect.signature(q.quantize_static).parameters
        self.cache = {"calibration_cache_path": str(tmp / "calibration.json")} if cached else {}
        self.calibrated = False

    def __call__(self, out: Path, float_nodes: list[str]) -> None:
        step = {"n": 0}
        first = not (self.calibrated and self.cache)

        def tick() -> None:
            step["n"] += 1
            if step["n"] % 8 == 0 or step["n"] == self.calib:
                self.say(f"calibrating {step['n']}/{self.calib}")

        if first:
            self.say(f"calibrating on {self.calib} synthetic wafers")
        self.q.quantize_static(
            str(self.prepared),
            str(out),
            _Reader(self.wafers, self.input_name, tick if first else None),
            quant_format=self.q.QuantFormat.QDQ,
            per_channel=self.per_channel,
            reduce_range=self.reduce_range,
            activation_type=self.q.QuantType.QUInt8,
            weight_type=self.q.QuantType.QInt8,
            nodes_to_exclude=float_nodes,
            calibrate_method=self.q.CalibrationMethod.MinMax,
            extra_options={"CalibStridedMinMax": CALIB_STRIDE},
            **self.cache,
        )
        self.calibrated = True


def _int8_card(
    parent: ModelCard, path: Path, calib: int, per_channel: bool, reduce_range: bool, exclude: list[str]
) -> ModelCard:
    raw = json.loads(json.dumps(parent.to_json()))
    raw["model_version"] = f"{parent.version}-int8"
    raw["sha256"] = sha256_file(path)
    onnx_info = dict(raw.get("onnx", {}))
    onnx_info.update(
        {
            "precision": "int8",
            "parent_sha256": parent.sha256,
            "parent_version": parent.version,
            "quantization": {
                "tool": "onnxruntime.quantization.quantize_static",
                "format": "QDQ",
                "activations": "uint8 (asymmetric, MinMax calibration)",
                "weights": "int8 per-channel" if per_channel else "int8 per-tensor",
                "reduce_range": reduce_range,
                "float_nodes": exclude,
                "calibration": {
                    "generator": "waferdesk.core.synth",
                    "wafers": calib,
                    "seed": CALIB_SEED,
                    "sizes": list(SYNTH_SIZES),
                },
            },
        }
    )
    raw["onnx"] = onnx_info
    raw["parent_metrics"] = parent.metrics
    return ModelCard.from_json(raw, str(card_path_for(path)))


def _remove(path: Path) -> None:
    for p in (path, card_path_for(path)):
        with contextlib.suppress(OSError):
            p.unlink()
