"""Exports of the open wafers: results as CSV, labels as COCO or a .wdm file, the view as PNG."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ...core.coco import build_coco, write_coco
from ...core.errors import FormatError
from ...core.formats import write_wdm
from ...core.records import WaferRecord
from ...core.render import save_png, upscale
from ...core.taxonomy import default_taxonomy
from .workspace import WaferEntry


def result_columns() -> list[str]:
    names = default_taxonomy().names
    return [
        "source",
        "index",
        "lot",
        "wafer_id",
        "rows",
        "cols",
        "dies",
        "fails",
        "yield",
        "label_status",
        "label_verdict",
        *(f"label_{n}" for n in names),
        "model_verdict",
        *(f"model_{n}" for n in names),
        "entropy_mean",
        "model_version",
    ]


def result_row(entry: WaferEntry) -> dict[str, object]:
    names = default_taxonomy().names
    s = entry.summary()
    row: dict[str, object] = {
        "source": str(entry.source),
        "index": entry.index,
        "lot": entry.wafer.lot,
        "wafer_id": entry.wafer.wafer_id,
        "rows": entry.wafer.shape[0],
        "cols": entry.wafer.shape[1],
        "dies": entry.wafer.n_dies,
        "fails": entry.wafer.n_fail,
        "yield": f"{entry.wafer.yield_:.4f}",
        "label_status": str(entry.status),
        "label_verdict": str(s.verdict) if entry.has_labels() else "",
    }
    for n in names:
        row[f"label_{n}"] = s.counts[n] if entry.has_labels() else ""
    ps = entry.predicted_summary()
    row["model_verdict"] = str(ps.verdict) if ps else ""
    for n in names:
        row[f"model_{n}"] = ps.counts[n] if ps else ""
    u = entry.uncertainty()
    row["entropy_mean"] = "" if u is None else f"{u:.4f}"
    row["model_version"] = getattr(entry.prediction, "model_version", "") if entry.prediction is not None else ""
    return row


def results_csv_text(entries: Sequence[WaferEntry]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=result_columns(), lineterminator="\n")
    writer.writeheader()
    for e in entries:
        writer.writerow(result_row(e))
    return buf.getvalue()


def _atomic_write_text(path: Path, text: str) -> Path:
    tmp = path.with_name(path.name + ".part")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(text, encoding="utf-8", newline="")
        tmp.replace(path)
    except OSError as exc:
        raise FormatError(path, f"cannot write ({exc.strerror or exc})") from None
    return path


def write_results_csv(path: str | Path, entries: Sequence[WaferEntry]) -> Path:
    """One row per wafer: identity, yield, label and model verdicts, per-class die counts."""
    return _atomic_write_text(Path(path), results_csv_text(entries))


def write_labels_coco(path: str | Path, entries: Sequence[WaferEntry]) -> tuple[Path, int]:
    """COCO of every wafer that carries labels; returns the path and how many wafers went in."""
    labelled = [e for e in entries if e.has_labels()]
    doc = build_coco([(e.wafer, e.label_mask()) for e in labelled])
    return write_coco(path, doc), len(labelled)


def write_labels_wdm(path: str | Path, entries: Sequence[WaferEntry]) -> Path:
    """The wafers with their current labels (unlabelled ones without a mask) as a .wdm file."""
    records = [WaferRecord(e.wafer, e.label_mask() if e.has_labels() else None) for e in entries]
    return write_wdm(path, records)


def write_picture_png(path: str | Path, rgba: np.ndarray, background: tuple[int, int, int], target: int = 1024) -> Path:
    """The view's picture enlarged crisply (whole pixels per die) onto an opaque background."""
    h, w = rgba.shape[:2]
    cell = max(1, target // max(h, w))
    a = rgba[..., 3:4].astype(np.float32) / 255.0
    rgb = (rgba[..., :3] * a + np.array(background, np.float32) * (1 - a)).round().astype(np.uint8)
    try:
        return save_png(upscale(rgb, cell, gap=1 if cell >= 6 else 0), path)
    except OSError as exc:
        raise FormatError(path, f"cannot write PNG ({exc.strerror or exc})") from None
