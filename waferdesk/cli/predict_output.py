"""What ``waferdesk predict`` writes: per-wafer overlay PNG and JSON, ``summary.csv``, ``errors.csv``.

The overlay PNG is drawn as a palette image (one byte per pixel, colours from
:func:`waferdesk.core.render.overlay_rgb`, so it matches the app) and enlarged by Pillow in C:
about four times cheaper than an RGB picture, which keeps writing far below the model's time.
"""

from __future__ import annotations

import csv
import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from ..core.inference import UNCERTAINTY_KEYS, Prediction
from ..core.render import overlay_rgb
from ..core.taxonomy import IGNORE, default_taxonomy
from ..core.wafer import FAIL, LabelMask, WaferMap

PICTURE_SIDE = 320
"""Longest side of an overlay picture in pixels (integer pixels per die, at least 1)."""

FIXED_COLUMNS = ("source", "index", "lot", "wafer", "verdict")
ERROR_COLUMNS = ("source", "error")


def summary_columns() -> list[str]:
    """``source, index, lot, wafer, verdict``, one column per class, then the uncertainty scores."""
    return [*FIXED_COLUMNS, *default_taxonomy().names, *UNCERTAINTY_KEYS]


@lru_cache(maxsize=1)
def _palette() -> bytes:
    """Palette index -> colour: 0..2 = no die / pass / fail, 3 + k = a fail of class k."""
    k = len(default_taxonomy())
    dies = np.array([[0, 1, 2] + [FAIL] * k], dtype=np.uint8)
    labels = np.array([[IGNORE] * 3 + list(range(k))], dtype=np.uint8)
    rgb = overlay_rgb(WaferMap(dies), LabelMask(labels))[0]
    pal = np.zeros((256, 3), np.uint8)
    pal[: rgb.shape[0]] = rgb
    return pal.tobytes()


def overlay_png(wafer: WaferMap, mask: LabelMask, path: Path, side: int = PICTURE_SIDE) -> None:
    from PIL import Image

    lab = mask.labels
    idx = np.where(lab != IGNORE, lab.astype(np.uint16) + 3, wafer.dies).astype(np.uint8)
    cell = max(1, side // max(wafer.shape))
    img = Image.fromarray(idx, mode="P")
    img.putpalette(_palette())
    if cell > 1:
        img = img.resize((idx.shape[1] * cell, idx.shape[0] * cell), Image.Resampling.NEAREST)
    img.save(path, compress_level=1)


_UNSAFE = re.compile(r"[^A-Za-z0-9._~-]+")


def safe_stem(path: Path, taken: set[str]) -> str:
    """A file-name-safe stem for ``path``, unique among ``taken`` (``name``, ``name~2``...)."""
    return unique_name(path.stem, taken)


def unique_name(text: str, taken: set[str]) -> str:
    """``text`` made file-name safe and unique among ``taken`` (which it joins)."""
    base = _UNSAFE.sub("_", text).strip("._") or "wafer"
    stem, n = base, 1
    while stem in taken:
        n += 1
        stem = f"{base}~{n}"
    taken.add(stem)
    return stem


def wafer_json(source: str, index: int, wafer: WaferMap, pred: Prediction, image: str | None) -> dict[str, Any]:
    return {
        "source": source,
        "index": index,
        "lot": wafer.lot,
        "wafer": wafer.wafer_id,
        "product": wafer.product,
        "image": image,
        **pred.to_json(include_embedding=False),
        "embedding_row": None,
    }


def write_wafer(
    out_dir: Path, name: str, row: int, source: str, index: int, wafer: WaferMap, pred: Prediction, images: bool
) -> None:
    """Write ``<name>.json`` (and ``<name>.png``); runs in the writer thread pool."""
    image = f"{name}.png" if images else None
    if image:
        overlay_png(wafer, pred.mask, out_dir / image)
    data = wafer_json(source, index, wafer, pred, image)
    data["embedding_row"] = row
    (out_dir / f"{name}.json").write_text(json.dumps(data, separators=(",", ":")), encoding="utf-8")


def summary_row(source: str, index: int, wafer: WaferMap, pred: Prediction) -> list[Any]:
    counts = pred.summary.counts
    return [
        source,
        index,
        wafer.lot,
        wafer.wafer_id,
        str(pred.summary.verdict),
        *(counts[name] for name in default_taxonomy().names),
        *(f"{pred.uncertainty[k]:.6f}" for k in UNCERTAINTY_KEYS),
    ]


def write_csv(path: Path, header: list[str] | tuple[str, ...], rows: list[list[Any]]) -> Path:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    tmp.replace(path)
    return path


class EmbeddingWriter:
    """Streams embeddings to ``embeddings.npy`` (rows = summary.csv rows) without holding them all.

    Rows go to a raw temporary file as they come; :meth:`close` writes the ``.npy`` header
    (which needs the final row count) and copies the rows behind it.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._raw = path.with_name(path.name + ".raw")
        self._f = open(self._raw, "wb")  # noqa: SIM115 - closed in close()
        self.rows = 0
        self.dim: int | None = None

    def add(self, emb: np.ndarray) -> int:
        v = np.ascontiguousarray(emb, dtype="<f4").ravel()
        if self.dim is None:
            self.dim = v.size
        elif v.size != self.dim:
            raise ValueError(f"embedding of size {v.size} after {self.dim}")
        self._f.write(v.tobytes())
        self.rows += 1
        return self.rows - 1

    def close(self) -> Path | None:
        self._f.close()
        if not self.rows:
            self._raw.unlink(missing_ok=True)
            self.path.unlink(missing_ok=True)  # an earlier run's rows would not match this summary.csv
            return None
        header = {"descr": "<f4", "fortran_order": False, "shape": (self.rows, self.dim)}
        with open(self.path, "wb") as out, open(self._raw, "rb") as src:
            np.lib.format.write_array_header_1_0(out, header)
            while block := src.read(1 << 22):
                out.write(block)
        self._raw.unlink()
        return self.path
