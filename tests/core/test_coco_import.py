"""COCO import: categories by name, RLE and polygon segmentations, wafer matching, clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from waferdesk.core.coco import build_coco, write_coco
from waferdesk.core.coco_import import match_image, parse_coco, read_coco, wafer_index
from waferdesk.core.errors import FormatError, ValidationError
from waferdesk.core.synth import generate
from waferdesk.core.taxonomy import IGNORE, default_taxonomy


@pytest.fixture(scope="module")
def records():
    return list(generate(4, seed=51))


def test_round_trip_through_a_file(records, tmp_path) -> None:
    path = write_coco(tmp_path / "c.json", build_coco((r.wafer, r.mask) for r in records))
    images = read_coco(path)
    wafers = [r.wafer for r in records]
    for img, rec in zip(images, records, strict=True):
        assert match_image(img, wafers) == records.index(rec)
        assert np.array_equal(img.mask_for(rec.wafer, complete=True).labels, rec.mask.labels)


def test_categories_match_by_name_not_by_id(records) -> None:
    doc = build_coco([(records[0].wafer, records[0].mask)])
    # renumber the categories (reversed ids) and the annotations with them
    remap = {c["id"]: 100 - c["id"] for c in doc["categories"]}
    for c in doc["categories"]:
        c["id"] = remap[c["id"]]
    for a in doc["annotations"]:
        a["category_id"] = remap[a["category_id"]]
    (img,) = parse_coco(doc)
    assert np.array_equal(img.labels, records[0].mask.labels)


def test_polygons_are_rasterised_and_kept_on_failing_dies(records) -> None:
    wafer = records[1].wafer
    h, w = wafer.shape
    doc = {
        "images": [{"id": 7, "width": w, "height": h, "lot": wafer.lot, "wafer_id": wafer.wafer_id}],
        "categories": [{"id": 3, "name": "center"}],
        "annotations": [{"id": 1, "image_id": 7, "category_id": 3, "segmentation": [[0, 0, w, 0, w, h, 0, h]]}],
    }
    (img,) = parse_coco(doc)
    assert img.from_polygons.all()
    mask = img.mask_for(wafer)
    center = default_taxonomy().index("center")
    assert np.array_equal(mask.labels == center, wafer.fail_mask)
    assert (mask.labels[~wafer.fail_mask] == IGNORE).all()


def test_rle_on_pass_dies_is_refused_naming_the_die(records) -> None:
    wafer = records[0].wafer
    doc = build_coco([(wafer, records[0].mask)])
    from waferdesk.core.coco import rle_encode

    doc["annotations"][0]["segmentation"] = rle_encode(wafer.dies == 1)
    (img,) = parse_coco(doc)
    with pytest.raises(ValidationError, match=r"image 1 \(.*\): .*pass die at row \d+, col \d+"):
        img.mask_for(wafer)


def _counts(doc: dict, counts) -> None:
    """Give the first annotation an uncompressed RLE with ``counts(cells)`` as its run lengths."""
    seg = doc["annotations"][0]["segmentation"]
    h, w = seg["size"]
    seg["counts"] = counts(h * w)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["categories"][0].update(name="blob"), "'blob' is not in the taxonomy"),
        (lambda d: d["annotations"][0].update(image_id=99), "image_id 99 is not an image"),
        (lambda d: d["annotations"][0].update(category_id=42), "category_id 42"),
        (lambda d: d["annotations"][0]["segmentation"].update(size=[1, 1]), "RLE runs sum to"),
        (lambda d: d["images"][0].update(width=d["images"][0]["width"] + 1), "RLE size"),
        (lambda d: d["images"][0].update(height=0), "outside 1..4096"),
        (lambda d: d.pop("categories"), "'categories' is missing"),
        (lambda d: d["annotations"][0].update(segmentation=[[1, 2]]), "at least 3 points"),
        (lambda d: _counts(d, lambda n: [1.5, n - 1.5]), r"annotations\[0\]\.segmentation: RLE counts\[0\] is 1\.5"),
        (
            lambda d: _counts(d, lambda n: [0, n - 2, True, 1]),
            r"annotations\[0\]\.segmentation: RLE counts\[2\] is True",
        ),
        (lambda d: _counts(d, lambda n: [0, float("nan")]), r"annotations\[0\]\.segmentation: RLE counts\[1\] is nan"),
        (lambda d: _counts(d, lambda n: [0, str(n)]), r"annotations\[0\]\.segmentation: RLE counts must be"),
        (
            lambda d: d["annotations"][0]["segmentation"].update(size=[2.5, 4]),
            r"annotations\[0\]\.segmentation: RLE size",
        ),
    ],
)
def test_bad_documents_name_the_field(records, tmp_path, change, message) -> None:
    doc = build_coco([(records[0].wafer, records[0].mask)])
    change(doc)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(FormatError, match="bad.json: not a usable COCO file: .*" + message.replace("(", r"\(")):
        read_coco(path)


def test_matching_by_lot_and_wafer_id_when_no_hash(records) -> None:
    wafers = [r.wafer for r in records]
    doc = build_coco((r.wafer, r.mask) for r in records)
    for img in doc["images"]:
        img.pop("content_hash")
    images = parse_coco(doc)
    idx = wafer_index(wafers)
    assert [match_image(img, wafers, idx) for img in images] == [0, 1, 2, 3]
    # the same lot/wafer id twice with no hash and no grid hash to tell them apart: refused
    twin = [wafers[0], wafers[0].with_(product="other")]
    img = images[0]
    img2 = type(img)(**{**img.__dict__, "grid_sha256": None})
    with pytest.raises(ValidationError, match="matches 2 wafers"):
        match_image(img2, twin)
