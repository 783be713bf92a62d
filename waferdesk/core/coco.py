"""COCO export of per-die labels: one image per wafer, one annotation per class present.

A wafer's "image" is its die grid (width = columns, height = rows, one pixel per die); the
categories are the taxonomy's classes (ids 1..K in taxonomy order, so id = label + 1); each
class present on a wafer gives one annotation whose segmentation is the compressed RLE of
all dies of that class (the COCO-Stuff convention: ``iscrowd`` 0, regions may be disjoint).

The RLE is exactly what pycocotools writes (column-major run lengths starting with a run of
zeros, packed as the LEB128-like string of ``maskApi.c``), so the files load with
``pycocotools.coco.COCO`` and ``mask.decode``. Pure numpy: the app, the CLI and the server
share it; :func:`rle_encode` / :func:`rle_decode` are the building blocks of the importer
(:mod:`waferdesk.core.coco_import`). Images carry ``content_hash`` (and ``lot``, ``wafer_id``,
``grid_sha256``) so an import finds its wafers again.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import atomic_open
from .errors import FormatError
from .taxonomy import IGNORE, Taxonomy, default_taxonomy
from .wafer import LabelMask, WaferMap

SUPERCATEGORY_SYSTEMATIC = "systematic"
SUPERCATEGORY_RANDOM = "random"


# -- run-length encoding ---------------------------------------------------------------------
def run_lengths(binary: np.ndarray) -> list[int]:
    """Column-major run lengths of a 2-D boolean mask, the first run counting zeros."""
    flat = np.asarray(binary, dtype=bool).ravel(order="F")
    if flat.size == 0:
        return []
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate(([0], change, [flat.size]))
    runs = np.diff(bounds).tolist()
    return [0, *runs] if flat[0] else runs


def counts_to_string(counts: Sequence[int]) -> str:
    """Pack run lengths into the compact string of pycocotools' ``rleToString``."""
    out: list[str] = []
    for i, value in enumerate(counts):
        x = int(value) - (int(counts[i - 2]) if i > 2 else 0)
        more = True
        while more:
            c = x & 0x1F
            x >>= 5  # arithmetic shift, as on the C long
            more = x != -1 if c & 0x10 else x != 0
            if more:
                c |= 0x20
            out.append(chr(c + 48))
    return "".join(out)


def string_to_counts(text: str) -> list[int]:
    """Unpack a pycocotools RLE string into run lengths (inverse of :func:`counts_to_string`)."""
    counts: list[int] = []
    p, n = 0, len(text)
    while p < n:
        x, k, more = 0, 0, True
        while more:
            if p >= n:
                raise ValueError("RLE string ends inside a number")
            c = ord(text[p]) - 48
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and c & 0x10:
                x |= -1 << (5 * k)
        if len(counts) > 2:
            x += counts[-2]
        counts.append(x)
    return counts


def rle_encode(binary: np.ndarray) -> dict:
    """COCO compressed RLE ``{"size": [h, w], "counts": str}`` of a 2-D boolean mask."""
    arr = np.asarray(binary)
    if arr.ndim != 2:
        raise ValueError(f"RLE needs a 2-D mask, got shape {arr.shape}")
    h, w = arr.shape
    return {"size": [int(h), int(w)], "counts": counts_to_string(run_lengths(arr))}


def _whole(value: Any) -> bool:
    """A JSON integer (or a float with a whole value, as the rest of a COCO file may carry):
    not a bool, not a string, not 1.5."""
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, np.integer)):
        return True
    return isinstance(value, (float, np.floating)) and math.isfinite(value) and float(value).is_integer()


def rle_decode(rle: dict) -> np.ndarray:
    """Boolean (h, w) mask of a COCO RLE (compressed string or uncompressed list of counts).

    Sizes and run lengths must be whole numbers: a count of 1.5 (or ``true``, or ``"3"``) is a
    ``ValueError`` naming it, never cut to an integer."""
    try:
        size, counts = rle["size"], rle["counts"]
        h, w = size
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"not a COCO RLE ({exc})") from None
    if not (_whole(h) and _whole(w)):
        raise ValueError(f"RLE size {size!r} must be two whole numbers [height, width]")
    h, w = int(h), int(w)
    if isinstance(counts, bytes):
        counts = counts.decode("ascii")
    if isinstance(counts, (tuple, np.ndarray)):
        counts = list(counts)
    if isinstance(counts, str):
        runs = string_to_counts(counts)
    elif isinstance(counts, list) and all(isinstance(c, (int, float, np.number)) for c in counts):
        bad = next((i for i, c in enumerate(counts) if not _whole(c)), None)
        if bad is not None:
            raise ValueError(f"RLE counts[{bad}] is {counts[bad]!r}: run lengths must be whole numbers")
        runs = [int(c) for c in counts]
    else:  # counts: 5, null, [[1]], ["3"]...
        raise ValueError("RLE counts must be a string or a list of run lengths")
    if any(r < 0 for r in runs):
        raise ValueError(f"RLE run {min(runs)} is negative")
    if sum(runs) != h * w:
        raise ValueError(f"RLE runs sum to {sum(runs)}, size {h}x{w} needs {h * w}")
    values = np.zeros(len(runs), dtype=bool)
    values[1::2] = True
    flat = np.repeat(values, runs)
    return flat.reshape((w, h)).T.copy()


def bbox_of(binary: np.ndarray) -> list[float]:
    """COCO bbox ``[x, y, width, height]`` (pixels = dies) of the set cells; zeros if empty."""
    rows = np.flatnonzero(binary.any(axis=1))
    cols = np.flatnonzero(binary.any(axis=0))
    if rows.size == 0:
        return [0.0, 0.0, 0.0, 0.0]
    return [float(cols[0]), float(rows[0]), float(cols[-1] - cols[0] + 1), float(rows[-1] - rows[0] + 1)]


# -- documents -------------------------------------------------------------------------------
def categories(taxonomy: Taxonomy | None = None) -> list[dict]:
    tax = taxonomy or default_taxonomy()
    return [
        {
            "id": c.index + 1,
            "name": c.name,
            "supercategory": SUPERCATEGORY_SYSTEMATIC if c.systematic else SUPERCATEGORY_RANDOM,
        }
        for c in tax.classes
    ]


def image_entry(image_id: int, wafer: WaferMap) -> dict:
    rows, cols = wafer.shape
    return {
        "id": image_id,
        "file_name": wafer.name or f"wafer-{image_id}",
        "width": cols,
        "height": rows,
        "lot": wafer.lot,
        "wafer_id": wafer.wafer_id,
        "product": wafer.product,
        "notch": wafer.notch,
        "source": wafer.source,
        "grid_sha256": wafer.grid_hash(),
        "content_hash": wafer.content_hash(),
    }


def mask_annotations(image_id: int, mask: LabelMask, first_id: int, taxonomy: Taxonomy | None = None) -> list[dict]:
    """One annotation per class present in ``mask``, ids counting up from ``first_id``."""
    tax = taxonomy or default_taxonomy()
    labels = mask.labels
    present = np.unique(labels[labels != IGNORE])
    out = []
    for k, cls in enumerate(int(c) for c in present):
        if cls >= len(tax):
            raise ValueError(f"label {cls} is not a class of the taxonomy ({len(tax)} classes)")
        region = labels == cls
        out.append(
            {
                "id": first_id + k,
                "image_id": image_id,
                "category_id": cls + 1,
                "segmentation": rle_encode(region),
                "area": float(np.count_nonzero(region)),
                "bbox": bbox_of(region),
                "iscrowd": 0,
            }
        )
    return out


def build_coco(
    items: Iterable[tuple[WaferMap, LabelMask]], taxonomy: Taxonomy | None = None, description: str = ""
) -> dict:
    """A COCO instances document for (wafer, mask) pairs; masks are checked against their wafer."""
    tax = taxonomy or default_taxonomy()
    images: list[dict] = []
    annotations: list[dict] = []
    for image_id, (wafer, mask) in enumerate(items, start=1):
        mask.validate(wafer, taxonomy=tax)
        images.append(image_entry(image_id, wafer))
        annotations += mask_annotations(image_id, mask, len(annotations) + 1, tax)
    return {
        "info": {
            "description": description or "WaferDesk per-die defect labels (one pixel per die)",
            "version": str(tax.version),
            "date_created": datetime.now(UTC).isoformat(timespec="seconds"),
        },
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": categories(tax),
    }


def write_coco(path: str | Path, document: dict) -> Path:
    """Write a COCO document atomically (:func:`~waferdesk.core.atomic.atomic_open`)."""
    out = Path(path)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with atomic_open(out) as fh:
            fh.write(json.dumps(document))
    except OSError as exc:
        raise FormatError(out, f"cannot write COCO file ({exc.strerror or exc})") from None
    return out


def labels_from_annotations(
    annotations: Iterable[dict], shape: tuple[int, int], taxonomy: Taxonomy | None = None
) -> np.ndarray:
    """The uint8 label grid one image's annotations describe (later annotations win overlaps)."""
    n = len(taxonomy or default_taxonomy())
    labels = np.full(shape, IGNORE, dtype=np.uint8)
    for ann in annotations:
        cls = int(ann["category_id"]) - 1
        if not 0 <= cls < n:
            raise ValueError(f"category_id {ann['category_id']} is not one of 1..{n}")
        region = rle_decode(ann["segmentation"])
        if region.shape != tuple(shape):
            raise ValueError(f"annotation {ann.get('id')}: RLE size {region.shape} != image {tuple(shape)}")
        labels[region] = cls
    return labels
