"""COCO over HTTP (SQLite and Postgres): pycocotools reads the export back to the stored masks,
export -> import -> export is identical, filters, and imports that are refused whole."""

from __future__ import annotations

import json

import numpy as np
import pytest
from annotation_helpers import error, rle, seed_wafers
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from server_helpers import bearer, create_user, login

from waferdesk.core.coco import labels_from_annotations
from waferdesk.core.taxonomy import IGNORE, default_taxonomy


@pytest.fixture
def labelled(client, wafer_file):
    """5 wafers in two lots; ann labels all, eng approves 4 of them (one stays submitted)."""
    create_user(client, "ann", "annotator")
    create_user(client, "eng", "engineer")
    h = {n: bearer(login(client, n)) for n in ("ann", "eng")}
    truth = seed_wafers(client, h["eng"], wafer_file(3, seed=41, lot="LOTA", name="a.wdm"))
    truth |= seed_wafers(client, h["eng"], wafer_file(2, seed=42, lot="LOTB", name="b.wdm"))
    ids = sorted(truth)
    for i, wid in enumerate(ids):
        ann = client.post(
            "/annotations", json={"wafer_id": wid, "labels": rle(truth[wid]), "submit": True}, headers=h["ann"]
        ).json()
        if i < 4:
            assert (
                client.post(f"/annotations/{ann['id']}/approve", json={"version": 1}, headers=h["eng"]).status_code
                == 200
            )
    return client, h, truth, ids


def _export(client, h, **body):
    r = client.post("/annotations/export", json=body, headers=h)
    assert r.status_code == 200, r.text
    return r.json()


def _without_date(doc):
    return {**doc, "info": {k: v for k, v in doc["info"].items() if k != "date_created"}}


def test_export_loads_in_pycocotools_and_decodes_to_the_stored_masks(labelled, tmp_path) -> None:
    client, h, truth, ids = labelled
    doc = _export(client, h["eng"])  # default: approved
    path = tmp_path / "coco.json"
    path.write_text(json.dumps(doc))
    coco = COCO(str(path))
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == list(default_taxonomy().names)
    images = coco.loadImgs(coco.getImgIds())
    assert [img["wafer_db_id"] for img in images] == ids[:4]
    for img in images:
        gt = truth[img["wafer_db_id"]]
        assert (img["height"], img["width"]) == gt.shape and img["lot"] in ("LOTA", "LOTB")
        anns = coco.loadAnns(coco.getAnnIds(imgIds=img["id"]))
        assert sorted(a["category_id"] - 1 for a in anns) == sorted(set(np.unique(gt)) - {IGNORE})
        for a in anns:  # one annotation per class present, compressed RLE, area, bbox
            region = coco.annToMask(a).astype(bool)
            assert np.array_equal(region, gt == a["category_id"] - 1)
            assert a["area"] == region.sum() and a["bbox"] == list(mask_utils.toBbox(a["segmentation"]))
            assert isinstance(a["segmentation"]["counts"], str)
        assert np.array_equal(labels_from_annotations(anns, gt.shape), gt)
    # the served file is what the stored annotations hold, bit for bit
    for img in images:
        stored = client.get(f"/annotations/wafer/{img['wafer_db_id']}", headers=h["eng"]).json()[0]
        assert stored["ground_truth"]


def test_export_filters(labelled) -> None:
    client, h, _truth, ids = labelled
    assert [i["wafer_db_id"] for i in _export(client, h["eng"], status="submitted")["images"]] == [ids[4]]
    assert {i["lot"] for i in _export(client, h["eng"], lot="LOTB")["images"]} == {"LOTB"}
    assert len(_export(client, h["eng"], date_from="2000-01-01", date_to="2999-12-31")["images"]) == 4
    assert _export(client, h["eng"], date_to="2000-01-01")["images"] == []
    assert _export(client, h["eng"], round=1)["images"] == []  # no round queued these wafers
    r = client.post("/annotations/export", json={"date_from": "yesterday"}, headers=h["eng"])
    assert r.status_code == 422 and "date_from" in error(r)["message"]
    assert client.post("/annotations/export", json={}, headers=h["ann"]).status_code == 403


def test_export_import_export_is_identical(labelled) -> None:
    client, h, _truth, ids = labelled
    first = _export(client, h["eng"])
    raw = json.dumps(first).encode()
    r = client.post(
        "/annotations/import", files={"file": ("c.json", raw)}, data={"status": "approved"}, headers=h["eng"]
    )
    assert r.status_code == 200, r.text
    assert (r.json()["created"], r.json()["updated"], r.json()["unchanged"]) == (4, 0, 0)
    # now each wafer has two approved annotations (ann's, then eng's import): the newest is exported
    second = _export(client, h["eng"])
    assert _without_date(second) == _without_date(first)
    for wid in ids[:4]:
        anns = client.get(f"/annotations/wafer/{wid}", headers=h["eng"]).json()
        assert [a["ground_truth"] for a in anns] == [False, True] and anns[1]["annotator"] == "eng"
    # importing the same again changes nothing
    r = client.post(
        "/annotations/import", files={"file": ("c.json", raw)}, data={"status": "approved"}, headers=h["eng"]
    )
    assert r.json()["unchanged"] == 4
    hist = client.get(f"/annotations/{r.json()['annotation_ids'][0]}/history", headers=h["eng"]).json()
    assert [e["action"] for e in hist] == ["import"]


def test_bad_imports_change_nothing(labelled) -> None:
    client, h, _truth, _ids = labelled
    doc = _export(client, h["eng"])
    before = client.get("/annotations", headers=h["eng"]).json()["total"]

    def refused(d, status="submitted"):
        r = client.post(
            "/annotations/import",
            files={"file": ("bad.json", json.dumps(d).encode())},
            data={"status": status},
            headers=h["eng"],
        )
        assert r.status_code == 422, r.text
        return error(r)

    # an image of no stored wafer
    d = json.loads(json.dumps(doc))
    d["images"][1].update(content_hash="0" * 64, lot="NOPE", wafer_id="W9")
    e = refused(d)
    assert "image 2 (NOPE/W9): no stored wafer matches" in e["message"] and e["details"][0]["image"] == "2"
    # a region on pass dies: the die is named
    d = json.loads(json.dumps(doc))
    img = d["images"][0]
    dies = np.array(client.get(f"/wafers/{img['wafer_db_id']}", headers=h["eng"]).json()["dies"])
    ann = next(a for a in d["annotations"] if a["image_id"] == img["id"])
    ann["segmentation"] = {
        "size": list(dies.shape),
        "counts": mask_utils.encode(np.asfortranarray((dies == 1).astype(np.uint8)))["counts"].decode(),
    }
    assert "pass die at row" in refused(d)["message"]
    # an unknown class, not JSON at all
    d = json.loads(json.dumps(doc))
    d["categories"][0]["name"] = "blob"
    assert "'blob' is not in the taxonomy" in refused(d)["message"]
    r = client.post("/annotations/import", files={"file": ("x.json", b"{nope")}, headers=h["eng"])
    assert r.status_code == 422 and error(r)["code"] == "bad_file"
    assert client.get("/annotations", headers=h["eng"]).json()["total"] == before


def test_an_import_nested_too_deeply_is_a_422_not_a_500(labelled) -> None:
    client, h, _truth, _ids = labelled
    deep = b"[" * 100_000 + b"]" * 100_000
    for raw in (deep, b'{"images": ' + deep + b"}"):
        r = client.post("/annotations/import", files={"file": ("deep.json", raw)}, headers=h["eng"])
        assert r.status_code == 422, r.text
        assert error(r)["code"] == "bad_file" and error(r)["message"].startswith("deep.json: ")


def test_malformed_segmentations_are_a_422_naming_the_annotation(labelled) -> None:
    client, h, _truth, _ids = labelled
    doc = _export(client, h["eng"])
    before = client.get("/annotations", headers=h["eng"]).json()["total"]
    size = doc["annotations"][0]["segmentation"]["size"]
    cases = [
        ({"size": size, "counts": 5}, "RLE counts must be a string or a list of run lengths"),
        ({"size": size, "counts": None}, "RLE counts must be a string or a list of run lengths"),
        ({"size": size, "counts": [[1]]}, "RLE counts must be a string or a list of run lengths"),
        ({"size": size, "counts": [-5, size[0] * size[1] + 5]}, "RLE run -5 is negative"),
        (
            {"size": size, "counts": [1.5, size[0] * size[1] - 1.5]},
            "RLE counts[0] is 1.5: run lengths must be whole numbers",
        ),
        (
            {"size": size, "counts": [True, size[0] * size[1] - 1]},
            "RLE counts[0] is True: run lengths must be whole numbers",
        ),
        ([[0, 0, "x", 0, 5, 5]], "polygon coordinates must be numbers"),
        ([[0, 0, float("inf"), 0, 5, 5]], "polygon coordinates must be finite numbers"),
        ([[float("nan"), 0, 5, 0, 5, 5]], "polygon coordinates must be finite numbers"),
    ]
    for seg, reason in cases:
        d = json.loads(json.dumps(doc))
        d["annotations"][0]["segmentation"] = seg
        r = client.post(
            "/annotations/import",
            files={"file": ("bad.json", json.dumps(d).encode())},
            data={"status": "draft"},
            headers=h["eng"],
        )
        assert r.status_code == 422, (seg, r.text)
        assert error(r)["message"] == f"bad.json: not a usable COCO file: annotations[0].segmentation: {reason}"
    assert client.get("/annotations", headers=h["eng"]).json()["total"] == before


def _relabelled(doc, *image_ids):
    """``doc`` with one region of each named image moved to a class the image does not have
    (still a complete, valid mask, but a different one)."""
    d = json.loads(json.dumps(doc))
    for image_id in image_ids:
        anns = [a for a in d["annotations"] if a["image_id"] == image_id]
        present = {a["category_id"] for a in anns}
        anns[0]["category_id"] = min({c["id"] for c in d["categories"]} - present)
    return d


def _subset(doc, *image_ids):
    d = json.loads(json.dumps(doc))
    d["images"] = [i for i in d["images"] if i["id"] in image_ids]
    d["annotations"] = [a for a in d["annotations"] if a["image_id"] in image_ids]
    return d


def _import(client, headers, doc, status, name="own.json"):
    files = {"file": (name, json.dumps(doc).encode())}
    return client.post("/annotations/import", files=files, data={"status": status}, headers=headers)


def _ok(r):
    assert r.status_code == 200, r.text
    return r.json()


@pytest.fixture
def own_approved(labelled):
    """eng imports images 1..3 of the approved export as approved: eng's own ground truth on
    ids[0..2]; image 4 (ids[3]) only has ann's annotation."""
    client, h, _truth, ids = labelled
    doc = _export(client, h["eng"])
    own = _ok(_import(client, h["eng"], _subset(doc, 1, 2, 3), "approved"))
    assert own["created"] == 3
    snapshot = {a: client.get(f"/annotations/{a}", headers=h["eng"]).json() for a in own["annotation_ids"]}
    assert all(a["status"] == "approved" and a["reviewer_id"] is not None for a in snapshot.values())
    total = client.get("/annotations", headers=h["eng"]).json()["total"]

    def unchanged():
        for a, before in snapshot.items():
            assert client.get(f"/annotations/{a}", headers=h["eng"]).json() == before
            hist = client.get(f"/annotations/{a}/history", headers=h["eng"]).json()
            assert [e["action"] for e in hist] == ["import"]
        assert client.get("/annotations", headers=h["eng"]).json()["total"] == total

    return client, h, ids, doc, own["annotation_ids"], snapshot, unchanged


def test_a_lower_status_import_of_a_different_mask_over_own_approved_is_refused(own_approved) -> None:
    """docs/annotations.md: an import never silently takes the importer's ground truth away."""
    client, h, ids, doc, own_ids, _snapshot, unchanged = own_approved
    img = {i["id"]: i for i in doc["images"]}
    # a different mask as submitted (or draft): 422 naming the image, and nothing is stored, not
    # even image 4, whose wafer eng has not annotated yet
    changed = _relabelled(doc, 2)
    for status in ("submitted", "draft"):
        r = _import(client, h["eng"], changed, status, name="demote.json")
        assert r.status_code == 422, r.text
        e = error(r)
        name = f"image 2 ({img[2]['lot']}/{img[2]['wafer_id']})"
        assert e["code"] == "bad_file" and e["message"] == (
            f"demote.json: {name}: your annotation of this wafer (annotation {own_ids[1]}) is approved; "
            f"importing it as {status} would take its approval away. Import with status=approved to "
            "replace the ground truth; nothing was imported"
        )
        assert [d["image"] for d in e["details"]] == ["2"]
        unchanged()
    on_4 = client.get(f"/annotations/wafer/{ids[3]}", headers=h["eng"]).json()
    assert [a["annotator"] for a in on_4] == ["ann"]
    # every such image is named
    e = error(_import(client, h["eng"], _relabelled(doc, 1, 3), "submitted"))
    assert [d["image"] for d in e["details"]] == ["1", "3"] and "(and 1 more)" in e["message"]
    unchanged()


def test_a_lower_status_import_of_the_same_mask_over_own_approved_changes_nothing(own_approved) -> None:
    client, h, _ids, doc, own_ids, _snapshot, unchanged = own_approved
    for status in ("submitted", "draft"):
        res = _ok(_import(client, h["eng"], _subset(doc, 1, 2, 3), status))
        assert (res["created"], res["updated"], res["unchanged"]) == (0, 0, 3)
        assert res["annotation_ids"] == own_ids
        unchanged()  # still approved: same version, reviewer and review time, no new history


def test_an_approved_import_replaces_own_approved_annotation(own_approved) -> None:
    client, h, _ids, doc, own_ids, snapshot, _unchanged = own_approved
    res = _ok(_import(client, h["eng"], _relabelled(doc, 2), "approved"))
    assert (res["created"], res["updated"], res["unchanged"]) == (1, 1, 2)
    after = client.get(f"/annotations/{own_ids[1]}", headers=h["eng"]).json()
    before = snapshot[own_ids[1]]
    assert after["status"] == "approved" and after["version"] == before["version"] + 1
    assert after["ground_truth"] and after["labels"] != before["labels"]


def test_an_import_replaces_the_importers_draft_or_submitted_annotation(labelled) -> None:
    client, h, _truth, _ids = labelled
    doc = _subset(_export(client, h["eng"]), 1, 2)
    changed = _relabelled(doc, 1, 2)
    first = _ok(_import(client, h["eng"], doc, "draft"))
    res = _ok(_import(client, h["eng"], changed, "submitted"))  # draft -> submitted, new mask
    assert (res["created"], res["updated"], res["unchanged"]) == (0, 2, 0)
    assert res["annotation_ids"] == first["annotation_ids"]
    res = _ok(_import(client, h["eng"], doc, "submitted"))  # submitted -> submitted, the old mask again
    assert (res["created"], res["updated"], res["unchanged"]) == (0, 2, 0)
    for a in res["annotation_ids"]:
        ann = client.get(f"/annotations/{a}", headers=h["eng"]).json()
        assert ann["status"] == "submitted" and ann["version"] == 3 and ann["reviewer_id"] is None


def test_other_users_approved_annotations_do_not_stop_an_import(labelled) -> None:
    """Only the importer's own live annotation counts: ann's approved ones stay as they are."""
    client, h, _truth, ids = labelled
    doc = _export(client, h["eng"])
    ann_before = client.get(f"/annotations/wafer/{ids[0]}", headers=h["eng"]).json()
    res = _ok(_import(client, h["eng"], _relabelled(_subset(doc, 1), 1), "submitted"))
    assert res["created"] == 1
    anns = client.get(f"/annotations/wafer/{ids[0]}", headers=h["eng"]).json()
    assert anns[0] == ann_before[0] and anns[0]["status"] == "approved" and anns[0]["ground_truth"]
    assert anns[1]["annotator"] == "eng" and anns[1]["status"] == "submitted"


def _masks(doc):
    """content hash -> the label grid the document gives that wafer."""
    return {
        img["content_hash"]: labels_from_annotations(
            [a for a in doc["annotations"] if a["image_id"] == img["id"]], (img["height"], img["width"])
        ).tobytes()
        for img in doc["images"]
    }


def test_the_cli_prints_a_refused_demotion_on_one_line(tmp_path, capsys, monkeypatch) -> None:
    """``waferdesk coco import --server``: the 422 is one line, exit 2, nothing stored; the same
    mask is unchanged; a local ``--wafers/--out`` import (no stored statuses) is not affected."""
    pytest.importorskip("uvicorn")
    from live_server import PASSWORD, start_server

    from waferdesk.cli import main
    from waferdesk.client.api import ServerClient
    from waferdesk.core.formats import write_wdm
    from waferdesk.core.synth import generate

    labels = write_wdm(tmp_path / "labels.wdm", list(generate(3, seed=71)))
    live = start_server(tmp_path / "srv", None)
    try:
        live.add_users(("eng", "engineer"))
        with ServerClient.login(live.url, "eng", PASSWORD) as eng:
            eng.upload(labels)
        monkeypatch.setenv("WAFERDESK_PASSWORD", PASSWORD)
        monkeypatch.delenv("WAFERDESK_TOKEN", raising=False)
        server = ["--server", live.url, "--user", "eng"]
        assert main(["coco", "export", str(labels), "--out", str(tmp_path / "c.json")]) == 0
        assert main(["coco", "import", str(tmp_path / "c.json"), *server, "--status", "approved"]) == 0
        assert "3 created, 0 updated, 0 unchanged" in capsys.readouterr().out
        doc = json.loads((tmp_path / "c.json").read_text())
        (tmp_path / "changed.json").write_text(json.dumps(_relabelled(doc, 2)))

        assert main(["coco", "import", str(tmp_path / "changed.json"), *server]) == 2
        out = capsys.readouterr()
        assert out.out == "" and out.err.count("\n") == 1 and "Traceback" not in out.err, out.err
        assert "changed.json: image 2 (" in out.err and "(and " not in out.err
        assert "is approved; importing it as submitted would take its approval away. " in out.err
        assert "Import with status=approved to replace the ground truth; nothing was imported" in out.err
        assert "(HTTP 422 bad_file)" in out.err
        with ServerClient.login(live.url, "eng", PASSWORD) as eng:  # the ground truth is still the first file's
            assert _masks(eng.export_coco()) == _masks(doc) != _masks(_relabelled(doc, 2))

        assert main(["coco", "import", str(tmp_path / "c.json"), *server]) == 0  # the same masks, submitted
        assert "0 created, 0 updated, 3 unchanged" in capsys.readouterr().out
    finally:
        live.stop()
    # local files have no statuses: the changed masks are written
    args = ["coco", "import", str(tmp_path / "changed.json"), "--wafers", str(labels), "--out", str(tmp_path / "o.wdm")]
    assert main(args) == 0 and (tmp_path / "o.wdm").exists()
