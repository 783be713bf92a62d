"""COCO import: a COCO instances document -> one per-die label grid per image, and the wafers
those images are.

The inverse of :mod:`waferdesk.core.coco`. Categories are matched to the taxonomy by NAME
(a file whose ids are numbered differently still imports; an unknown name is an error, never
a silent relabel). Segmentations may be compressed RLE (what WaferDesk writes), uncompressed
RLE, or polygons in die units (what other labelling tools often write); polygon regions are
rasterised by die centre and later kept on failing dies only, while RLE regions must already
lie on failing dies (checked against the wafer, the error names the die). Overlapping
annotations: the later one wins.

Images find their wafer by ``content_hash`` when the file has one, else by lot + wafer id
(checked against ``grid_sha256`` and the die-grid size when present).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .annotation import polygon_cells
from .coco import rle_decode
from .errors import FormatError, ValidationError
from .taxonomy import IGNORE, Taxonomy, default_taxonomy
from .wafer import FAIL, LabelMask, WaferMap

MAX_COCO_BYTES = 512 * 1024**2


@dataclass(frozen=True, eq=False)
class CocoImage:
    """One image of a COCO file with the label grid its annotations describe."""

    id: int
    file_name: str
    height: int
    width: int
    lot: str | None
    wafer_id: str | None
    content_hash: str | None
    grid_sha256: str | None
    labels: np.ndarray  # uint8 (height, width), IGNORE where no annotation
    from_polygons: np.ndarray  # bool: cells set by a polygon (kept on failing dies only)
    meta: dict[str, Any]

    @property
    def name(self) -> str:
        if self.lot or self.wafer_id:
            return f"image {self.id} ({self.lot or '?'}/{self.wafer_id or '?'})"
        return f"image {self.id} ({self.file_name})" if self.file_name else f"image {self.id}"

    def mask_for(self, wafer: WaferMap, complete: bool = False, taxonomy: Taxonomy | None = None) -> LabelMask:
        """The label mask of ``wafer`` (polygon cells off failing dies dropped), validated."""
        if (self.height, self.width) != wafer.shape:
            raise ValidationError(
                f"{self.name}: size {self.height}x{self.width} (rows x cols) != wafer {wafer.name} {wafer.shape}"
            )
        labels = np.where(self.from_polygons & (wafer.dies != FAIL), IGNORE, self.labels).astype(np.uint8)
        mask = LabelMask(labels)
        try:
            mask.validate(wafer, complete=complete, taxonomy=taxonomy)
        except ValidationError as exc:
            raise ValidationError(f"{self.name}: {exc}") from None
        return mask


def _int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
        raise ValueError(f"{where}: {value!r} is not an integer")
    return int(value)


def _category_map(doc: dict, tax: Taxonomy) -> dict[int, int]:
    """COCO category id -> taxonomy class index, by name."""
    cats = doc.get("categories")
    if not isinstance(cats, list):
        raise ValueError("field 'categories' is missing or not a list")
    out: dict[int, int] = {}
    for i, cat in enumerate(cats):
        if not isinstance(cat, dict) or "id" not in cat or "name" not in cat:
            raise ValueError(f"categories[{i}]: needs 'id' and 'name'")
        name = str(cat["name"])
        if name not in tax.names:
            raise ValueError(f"categories[{i}]: class {name!r} is not in the taxonomy ({', '.join(tax.names)})")
        out[_int(cat["id"], f"categories[{i}].id")] = tax.index(name)
    return out


def _region(seg: Any, shape: tuple[int, int], where: str) -> tuple[np.ndarray, bool]:
    """(boolean region, came from polygons) of one segmentation."""
    if isinstance(seg, dict):
        try:
            region = rle_decode(seg)
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
        if region.shape != shape:
            raise ValueError(f"{where}: RLE size {list(region.shape)} != image size {list(shape)} (height, width)")
        return region, False
    if isinstance(seg, list):
        region = np.zeros(shape, dtype=bool)
        for poly in seg:
            if not isinstance(poly, list) or len(poly) < 6 or len(poly) % 2:
                raise ValueError(f"{where}: a polygon is a flat list [x1, y1, x2, y2, ...] of at least 3 points")
            try:
                pts = np.asarray(poly, dtype=np.float64).reshape(-1, 2)
            except (TypeError, ValueError):
                raise ValueError(f"{where}: polygon coordinates must be numbers") from None
            if not np.isfinite(pts).all():
                raise ValueError(f"{where}: polygon coordinates must be finite numbers")
            region |= polygon_cells(shape, [(float(x), float(y)) for x, y in pts])
        return region, True
    raise ValueError(f"{where}: segmentation must be an RLE object or a list of polygons")


def parse_coco(doc: Any, taxonomy: Taxonomy | None = None) -> list[CocoImage]:
    """Images (in file order) with their label grids; ``ValueError`` names the bad field."""
    tax = taxonomy or default_taxonomy()
    if not isinstance(doc, dict):
        raise ValueError("a COCO document is a JSON object")
    cat_map = _category_map(doc, tax)
    images = doc.get("images")
    anns = doc.get("annotations", [])
    if not isinstance(images, list) or not isinstance(anns, list):
        raise ValueError("fields 'images' and 'annotations' must be lists")
    grids: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    order: list[tuple[int, dict]] = []
    for i, img in enumerate(images):
        if not isinstance(img, dict):
            raise ValueError(f"images[{i}]: not an object")
        iid = _int(img.get("id"), f"images[{i}].id")
        h, w = _int(img.get("height"), f"images[{i}].height"), _int(img.get("width"), f"images[{i}].width")
        if not (0 < h <= 4096 and 0 < w <= 4096):
            raise ValueError(f"images[{i}]: size {h}x{w} outside 1..4096")
        if iid in grids:
            raise ValueError(f"images[{i}]: image id {iid} appears twice")
        grids[iid] = (np.full((h, w), IGNORE, dtype=np.uint8), np.zeros((h, w), dtype=bool))
        order.append((iid, img))
    for j, ann in enumerate(anns):
        where = f"annotations[{j}]"
        if not isinstance(ann, dict):
            raise ValueError(f"{where}: not an object")
        iid = _int(ann.get("image_id"), f"{where}.image_id")
        if iid not in grids:
            raise ValueError(f"{where}: image_id {iid} is not an image of the file")
        cid = _int(ann.get("category_id"), f"{where}.category_id")
        if cid not in cat_map:
            raise ValueError(f"{where}: category_id {cid} is not one of the file's categories")
        labels, from_poly = grids[iid]
        region, is_poly = _region(ann.get("segmentation"), labels.shape, f"{where}.segmentation")
        labels[region] = cat_map[cid]
        from_poly[region] = is_poly
    out = []
    for iid, img in order:
        labels, from_poly = grids[iid]
        out.append(
            CocoImage(
                id=iid,
                file_name=str(img.get("file_name") or ""),
                height=labels.shape[0],
                width=labels.shape[1],
                lot=None if img.get("lot") is None else str(img["lot"]),
                wafer_id=None if img.get("wafer_id") is None else str(img["wafer_id"]),
                content_hash=img.get("content_hash") or None,
                grid_sha256=img.get("grid_sha256") or None,
                labels=labels,
                from_polygons=from_poly,
                meta={k: v for k, v in img.items() if k not in ("id", "height", "width")},
            )
        )
    return out


def read_coco(path: str | Path, taxonomy: Taxonomy | None = None) -> list[CocoImage]:
    """:func:`parse_coco` of a file; a :class:`FormatError` names the file and the field."""
    p = Path(path)
    try:
        if p.stat().st_size > MAX_COCO_BYTES:
            raise FormatError(p, f"larger than {MAX_COCO_BYTES} bytes")
        doc = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FormatError(p, "file not found") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise FormatError(p, f"not a readable JSON file ({exc})") from None
    try:
        return parse_coco(doc, taxonomy)
    except ValueError as exc:
        raise FormatError(p, f"not a usable COCO file: {exc}") from None


def match_image(image: CocoImage, wafers: Sequence[WaferMap], index: dict[str, list[int]] | None = None) -> int | None:
    """Index into ``wafers`` of the wafer ``image`` is, or ``None``.

    ``index`` (from :func:`wafer_index`) makes repeated lookups cheap. Raises
    :class:`ValidationError` when lot + wafer id match several wafers with no hash to decide.
    """
    idx = index if index is not None else wafer_index(wafers)
    if image.content_hash:
        hits = idx.get("hash:" + image.content_hash, [])
        if hits:
            return hits[0]
    if image.lot is None and image.wafer_id is None:
        return None
    hits = idx.get(f"id:{image.lot or ''}\x00{image.wafer_id or ''}", [])
    hits = [i for i in hits if wafers[i].shape == (image.height, image.width)]
    if image.grid_sha256:
        hits = [i for i in hits if wafers[i].grid_hash() == image.grid_sha256]
    if len(hits) > 1:
        raise ValidationError(f"{image.name}: matches {len(hits)} wafers by lot and wafer id; cannot tell which")
    return hits[0] if hits else None


def wafer_index(wafers: Sequence[WaferMap]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for i, w in enumerate(wafers):
        out.setdefault("hash:" + w.content_hash(), []).append(i)
        out.setdefault(f"id:{w.lot}\x00{w.wafer_id}", []).append(i)
    return out
