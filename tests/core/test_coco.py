"""COCO export: RLE strings byte-identical to pycocotools, documents that pycocotools loads."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from waferdesk.core.coco import (
    bbox_of,
    build_coco,
    labels_from_annotations,
    rle_decode,
    rle_encode,
    string_to_counts,
    write_coco,
)
from waferdesk.core.synth import generate_record
from waferdesk.core.taxonomy import IGNORE, default_taxonomy


@pytest.mark.parametrize("seed", range(6))
def test_rle_matches_pycocotools(seed: int) -> None:
    rng = np.random.default_rng(seed)
    h, w = rng.integers(1, 70, size=2)
    m = rng.random((h, w)) < rng.choice([0.02, 0.3, 0.9])
    if seed == 0:
        m[:] = True  # starts with a run of ones: counts begin with 0
    if seed == 1:
        m[:] = False
    ours = rle_encode(m)
    theirs = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
    assert ours["counts"] == theirs["counts"].decode("ascii")
    assert ours["size"] == list(theirs["size"])
    assert np.array_equal(rle_decode(ours), m)
    assert np.array_equal(mask_utils.decode({"size": ours["size"], "counts": ours["counts"].encode()}), m)
    assert int(mask_utils.area(theirs)) == int(m.sum())


def test_large_runs_round_trip() -> None:
    m = np.zeros((300, 300), bool)
    m[150:, 10:290] = True
    rle = rle_encode(m)
    assert rle["counts"] == mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))["counts"].decode()
    assert sum(string_to_counts(rle["counts"])) == m.size
    assert bbox_of(m) == [10.0, 150.0, 280.0, 150.0]


def test_document_loads_in_pycocotools(tmp_path) -> None:
    tax = default_taxonomy()
    recs = [generate_record(3, i) for i in range(4)]
    doc = build_coco([(r.wafer, r.mask) for r in recs])
    path = write_coco(tmp_path / "labels.json", doc)
    coco = COCO(str(path))
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == list(tax.names)
    for image_id, rec in enumerate(recs, start=1):
        img = coco.loadImgs(image_id)[0]
        assert (img["height"], img["width"]) == rec.wafer.shape
        anns = coco.loadAnns(coco.getAnnIds(imgIds=image_id))
        present = sorted(set(np.unique(rec.mask.labels)) - {IGNORE})
        assert sorted(a["category_id"] - 1 for a in anns) == present
        for ann in anns:
            region = coco.annToMask(ann).astype(bool)
            assert np.array_equal(region, rec.mask.labels == ann["category_id"] - 1)
            assert ann["area"] == region.sum()
            assert ann["bbox"] == list(mask_utils.toBbox(ann["segmentation"]))
        labels = labels_from_annotations(anns, rec.wafer.shape)
        assert np.array_equal(labels, rec.mask.labels)
    json.loads(path.read_text())  # plain JSON
