"""Exports from the window: PNG of the view, CSV of results, COCO and .wdm of the labels."""

from __future__ import annotations

import csv

import numpy as np
from PIL import Image
from pycocotools.coco import COCO

from waferdesk.app.model.workspace import Status
from waferdesk.core.formats import read_wdm
from waferdesk.core.taxonomy import IGNORE, default_taxonomy

TAX = default_taxonomy()


def label_known(window) -> None:
    entry = window.doc.current
    cells = entry.wafer.dies == 2
    new = np.where(cells, TAX.index("particle"), IGNORE).astype(np.uint8)
    new[15, 3] = TAX.index("random")
    window.doc.replace_labels(entry, new, "test labels")


def test_png_csv_coco_and_labels_file(window, wafer_file, tmp_path) -> None:
    window.open_paths([wafer_file])
    label_known(window)
    known = window.doc.current

    png = window.export_png(tmp_path / "view.png")
    img = np.asarray(Image.open(png).convert("RGB"))
    cell = 1024 // 20
    assert img.shape == (20 * cell, 20 * cell, 3)
    # a failing die labelled particle is drawn in its blended colour, crisp over its whole cell
    centre = img[5 * cell + cell // 2, 6 * cell + cell // 2]
    assert tuple(centre) == tuple(window.view.rgba[5, 6, :3])
    block = img[5 * cell : 6 * cell - 1, 6 * cell : 7 * cell - 1]
    assert (block == centre).all()

    out = window.export_csv(tmp_path / "results.csv")
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 4
    first = rows[0]
    assert (first["lot"], first["wafer_id"], first["label_status"]) == ("KNOWN", "01", "draft")
    assert int(first["label_particle"]) == 14 and int(first["label_random"]) == 1
    assert first["label_verdict"] == "particle"
    assert int(first["fails"]) == 15 and first["model_verdict"] == ""

    coco_path = window.export_coco(tmp_path / "labels.json")
    coco = COCO(str(coco_path))
    assert len(coco.getImgIds()) == 4  # KNOWN plus the three synthetic wafers with masks
    img0 = coco.loadImgs(1)[0]
    assert (img0["height"], img0["width"]) == (20, 20)
    for ann in coco.loadAnns(coco.getAnnIds(imgIds=1)):
        region = coco.annToMask(ann).astype(bool)
        assert np.array_equal(region, known.labels == ann["category_id"] - 1)

    saved = window.save_labels(tmp_path / "out" / "labelled.wdm")
    recs = read_wdm(saved)
    assert len(recs) == 4 and np.array_equal(recs[0].mask.labels, known.labels)
    assert known.status is Status.SAVED
    assert window.browser.model.data(window.browser.model.index(0, 5)) == "saved"
    # a second Ctrl+S goes to the same file without asking
    assert window.save_labels() == saved
    # never over an opened source file
    assert window.save_labels(wafer_file) is None


def test_an_export_that_cannot_be_written_says_so_naming_the_file(window, wafer_file, tmp_path, monkeypatch) -> None:
    import waferdesk.app.window_files as window_files

    shown: list[tuple[str, str]] = []
    monkeypatch.setattr(window_files.QMessageBox, "warning", lambda _parent, title, text: shown.append((title, text)))
    window.open_paths([wafer_file])
    label_known(window)
    blocker = tmp_path / "a-file"  # a path under a plain file cannot be written
    blocker.write_text("x")
    for export, name in (
        (window.export_csv, "results.csv"),
        (window.export_coco, "labels.json"),
        (window.export_png, "view.png"),
    ):
        shown.clear()
        assert export(blocker / name) is None  # no exception escapes into Qt
        assert len(shown) == 1 and shown[0][0] == "Export failed"
        assert str(blocker / name) in shown[0][1]
