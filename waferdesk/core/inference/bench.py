"""Benchmark of the engine: ONNX Runtime fp32 vs int8 vs PyTorch eager on the same inputs.

For each map size (dies per side) it measures the network alone on pre-encoded inputs:
median and p95 latency at batch 1, and throughput (wafers/s) at batch 32; for the ONNX
variants also the full ``Segmenter.predict`` latency (encode + run + decode + summary) at
batch 1. All variants get the same encoded arrays and the same thread count. PyTorch comes
from a factory the caller passes in (the core never imports torch); when it is missing, the
report says why. A second table prices test-time augmentation: ``Segmenter.predict`` at
batch 1 with 1, 2, 4 and 8 views of the wafer (:mod:`.views`), each against one view. Numbers
are printed and returned, never asserted.
"""

from __future__ import annotations

import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..encoding import canvas_for, encode_batch
from ..modelcard import card_path_for, load_model_card
from ..synth import SynthConfig, generate
from ..wafer import NO_DIE, WaferMap
from .providers import physical_cores, short_name
from .segmenter import Segmenter
from .views import VIEW_SETS

RunFn = Callable[[np.ndarray], Any]
TorchFactory = Callable[[Any, Path, int], "tuple[RunFn | None, str]"]
"""``(card, model_path, threads) -> (run, reason)``: a callable running the eager module on an
encoded float32 batch, or None and why not."""

DEFAULT_SIZES = (32, 64, 256)
BATCH = 32


def wafers_of_size(side: int, count: int, seed: int = 4242) -> list[WaferMap]:
    """``count`` synthetic wafers of exactly ``side`` x ``side`` dies (cropped or padded)."""
    out = []
    for rec in generate(count, seed=seed + side, cfg=SynthConfig(size_range=(max(4, side - 2), side))):
        d = rec.wafer.dies[:side, :side]
        grid = np.full((side, side), NO_DIE, np.uint8)
        t, left = (side - d.shape[0]) // 2, (side - d.shape[1]) // 2
        grid[t : t + d.shape[0], left : left + d.shape[1]] = d
        out.append(WaferMap(grid, lot="BENCH", wafer_id=str(len(out))))
    return out


def _timed(fn: Callable[[], Any], runs: int, warmup: int) -> np.ndarray:
    for _ in range(warmup):
        fn()
    t = np.empty(runs)
    for i in range(runs):
        t0 = time.perf_counter()
        fn()
        t[i] = time.perf_counter() - t0
    return t * 1000.0


@dataclass
class Variant:
    name: str
    precision: str
    provider: str
    threads: int
    run: RunFn
    segmenter: Segmenter | None = None


def measure(variant: Variant, size: int, runs: int, batch: int = BATCH) -> dict[str, Any]:
    wafers = wafers_of_size(size, batch)
    x1, _ = encode_batch([wafers[0].dies])
    xb, _ = encode_batch([w.dies for w in wafers])
    b1 = _timed(lambda: variant.run(x1), runs, warmup=2)
    bn = _timed(lambda: variant.run(xb), max(3, runs // 4), warmup=1)
    row: dict[str, Any] = {
        "variant": variant.name,
        "precision": variant.precision,
        "provider": variant.provider,
        "threads": variant.threads,
        "size": size,
        "canvas": list(canvas_for((size, size))),
        "b1_median_ms": round(float(np.median(b1)), 3),
        "b1_p95_ms": round(float(np.percentile(b1, 95)), 3),
        "batch": batch,
        "batch_median_ms": round(float(np.median(bn)), 3),
        "batch_wafers_per_s": round(batch / (float(np.median(bn)) / 1000.0), 1),
        "predict_b1_median_ms": None,
    }
    if variant.segmenter is not None:
        seg = variant.segmenter
        pr = _timed(lambda: seg.predict_batch([wafers[1]]), runs, warmup=1)
        row["predict_b1_median_ms"] = round(float(np.median(pr)), 3)
    return row


def measure_views(
    model_path: Path, size: int, runs: int, providers: str = "auto", threads: int | None = None
) -> dict[str, Any]:
    """``Segmenter.predict`` latency at batch 1 (encode + runs + decode + summary) per number
    of views, interleaved run by run so that a busy machine slows every column alike."""
    wafer = wafers_of_size(size, 2)[1]
    segs = {v: Segmenter(model_path, providers=providers, threads=threads, cache=False, views=v) for v in VIEW_SETS}
    times: dict[int, list[float]] = {v: [] for v in segs}
    for seg in segs.values():
        seg.predict_batch([wafer])  # warm-up: every canvas shape once
    for _ in range(runs):
        for v, seg in segs.items():
            t0 = time.perf_counter()
            seg.predict_batch([wafer])
            times[v].append((time.perf_counter() - t0) * 1000.0)
    med = {v: float(np.median(t)) for v, t in times.items()}
    return {
        "size": size,
        "runs": runs,
        "predict_b1_median_ms": {str(v): round(m, 3) for v, m in med.items()},
        "ratio_vs_1_view": {str(v): round(m / med[1], 2) for v, m in med.items()},
    }


def machine_info(threads: int) -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import onnxruntime as ort

    info = {
        "cpu": cpu,
        "logical_cpus": os.cpu_count(),
        "physical_cores": physical_cores(),
        "threads": threads,
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "onnxruntime": ort.__version__,
    }
    if hasattr(os, "getloadavg"):  # a shared machine makes every number slower: say how busy it was
        info["load_average_1min"] = round(os.getloadavg()[0], 2)
    return info


def run_bench(
    model_path: str | Path,
    *,
    sizes: Sequence[int] = DEFAULT_SIZES,
    runs: int = 20,
    int8: str | Path | bool = True,
    torch_factory: TorchFactory | None = None,
    providers: str = "auto",
    threads: int | None = None,
    batch: int = BATCH,
    calib: int = 16,
    on_progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Measure every variant at every size; returns the JSON-able report (see module doc).

    ``int8``: a path to an int8 model, True to quantize one on the fly (agreement reported,
    never refused here), False to skip.
    """
    say = on_progress or (lambda _m: None)
    load_start = round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None
    src = Path(model_path)
    card = load_model_card(src)
    variants: list[Variant] = []
    notes: dict[str, str] = {}
    report: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="waferdesk-bench-") as tmp:

        def onnx_variant(path: Path, name: str) -> Variant:
            seg = Segmenter(path, providers=providers, threads=threads, cache=False, views=1)
            return Variant(
                name, str(seg.card.onnx.get("precision", "?")), short_name(seg.provider), seg.threads, seg.run, seg
            )

        main = onnx_variant(src, f"onnxruntime {card.onnx.get('precision', 'fp32')}")
        variants.append(main)
        report["provider_note"] = main.segmenter.provider_note if main.segmenter else ""
        n_threads = main.threads
        if str(card.onnx.get("precision", "fp32")) == "fp16":
            try:
                variants.append(onnx_variant(_fp32_copy(src, Path(tmp)), "onnxruntime fp32"))
            except Exception as exc:  # onnx missing or conversion impossible
                notes["onnxruntime fp32"] = f"not measured ({exc})"
        if int8 is True:
            from .quantize import quantize_model

            say("quantizing an int8 copy for the comparison")
            try:
                rep = quantize_model(src, Path(tmp) / f"{src.stem}-int8.onnx", calib=calib, check=20, min_agreement=0.0)
                report["int8"] = {"source": "quantized on the fly", **rep.to_json()}
                report["int8"]["path"] = None
                variants.append(onnx_variant(Path(tmp) / f"{src.stem}-int8.onnx", "onnxruntime int8"))
            except Exception as exc:
                notes["onnxruntime int8"] = f"not measured ({exc})"
        elif int8:
            variants.append(onnx_variant(Path(int8), "onnxruntime int8"))
            report["int8"] = {"source": str(int8)}
        if torch_factory is not None:
            run, reason = torch_factory(card, src, n_threads)
            if run is not None:
                variants.append(Variant("pytorch eager", "fp32", "CPU", n_threads, run))
            else:
                notes["pytorch eager"] = f"not measured ({reason})"
        else:
            notes["pytorch eager"] = "not measured (no torch baseline given)"

        rows = []
        for size in sizes:
            for v in variants:
                say(f"{v.name}: {size}x{size} dies")
                rows.append(measure(v, size, runs, batch))
        say("test-time augmentation: 1, 2, 4 and 8 views")
        view_rows = [measure_views(src, size, runs, providers, threads) for size in sizes]
    report.update(
        {
            "format": "waferdesk-bench",
            "version": 1,
            "machine": {**machine_info(n_threads), "load_average_1min_at_start": load_start},
            "model": {
                "path": str(src),
                "version": card.version,
                "sha256": card.sha256,
                "architecture": card.architecture,
                "precision": card.onnx.get("precision", "fp32"),
            },
            "settings": {"sizes": list(sizes), "runs": runs, "batch": batch, "providers": providers},
            "results": rows,
            "views": view_rows,
            "card_views": card.default_views,
            "not_measured": notes,
        }
    )
    return report


def _fp32_copy(src: Path, tmp: Path) -> Path:
    import json

    import onnx

    from ..modelcard import sha256_file
    from .quantize import upcast_fp16

    out = tmp / f"{src.stem}-fp32.onnx"
    onnx.save(upcast_fp16(onnx.load(str(src))), str(out))
    card = json.loads(card_path_for(src).read_text(encoding="utf-8"))
    card["sha256"] = sha256_file(out)
    card.setdefault("onnx", {})["precision"] = "fp32"
    card_path_for(out).write_text(json.dumps(card), encoding="utf-8")
    return out


def format_table(report: dict[str, Any]) -> str:
    """The report as a fixed-width text table (also pasted into docs/inference.md)."""
    head = (
        f"{'variant':<20} {'provider':<9} {'thr':>3} {'dies':>8} {'canvas':>8} "
        f"{'b1 median':>10} {'b1 p95':>8} {'b32 wafers/s':>13} {'predict b1':>11}"
    )
    lines = [head, "-" * len(head)]
    for r in report["results"]:
        pred = f"{r['predict_b1_median_ms']:.2f} ms" if r["predict_b1_median_ms"] is not None else "-"
        lines.append(
            f"{r['variant']:<20} {r['provider']:<9} {r['threads']:>3} {r['size']:>3}x{r['size']:<4} "
            f"{r['canvas'][0]:>3}x{r['canvas'][1]:<4} {r['b1_median_ms']:>7.2f} ms {r['b1_p95_ms']:>5.2f} ms "
            f"{r['batch_wafers_per_s']:>13.1f} {pred:>11}"
        )
    for name, why in report.get("not_measured", {}).items():
        lines.append(f"{name}: {why}")
    if report.get("views"):
        counts = list(report["views"][0]["predict_b1_median_ms"])
        lines.append("")
        lines.append(
            f"test-time augmentation: Segmenter.predict at batch 1, median of {report['views'][0]['runs']} "
            f"interleaved runs (the model card asks for {report.get('card_views', 1)})"
        )
        head = f"{'dies':>8} " + " ".join(f"{c + (' view' if c == '1' else ' views'):>17}" for c in counts)
        lines += [head, "-" * len(head)]
        for r in report["views"]:
            cells = [f"{r['predict_b1_median_ms'][c]:>8.2f} ms {r['ratio_vs_1_view'][c]:>4.2f}x" for c in counts]
            lines.append(f"{r['size']:>3}x{r['size']:<4} " + " ".join(f"{cell:>17}" for cell in cells))
        lines.append("")
    m = report["machine"]
    lines.append(
        f"machine: {m['cpu']}, {m['physical_cores']} physical cores ({m['logical_cpus']} logical), "
        f"{m['threads']} threads, onnxruntime {m['onnxruntime']}; {report.get('provider_note', '')}"
    )
    if m.get("load_average_1min") is not None:
        lines.append(
            f"load average (1 min) {m.get('load_average_1min_at_start')} at start, {m['load_average_1min']} at end"
            " (a start value near 0 means an idle machine; other work slows every number)"
        )
    if "int8" in report and "agreement" in report["int8"]:
        lines.append(f"int8 argmax agreement with the original: {report['int8']['agreement']:.4%} of failing dies")
    return "\n".join(lines)
