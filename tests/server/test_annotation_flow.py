"""The issue's "done means", in one test over HTTP against Postgres: a real uvicorn on loopback,
clients through ``waferdesk.client.api.ServerClient`` (one httpx connection pool each).

An engineer uploads wafers and runs a query; two annotators claim concurrently and get
disjoint items, label them (starting from the model's pre-annotation) and submit; a reviewer
approves; the COCO export validates with pycocotools and decodes to exactly the submitted
masks. Then ten annotators race for the rest of the queue (each item handed out once), and
the ``waferdesk coco`` CLI talks to the same server.
"""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from live_server import PASSWORD, start_server
from pycocotools.coco import COCO

from waferdesk.cli import main
from waferdesk.client.api import ServerClient
from waferdesk.core.formats import read_any

uvicorn = pytest.importorskip("uvicorn")

pytestmark = pytest.mark.postgres


@pytest.fixture
def live_server(postgres_url, tiny_model, tmp_path):
    live = start_server(tmp_path, tiny_model, database_url=postgres_url)
    try:
        yield live.url, live.ctx
    finally:
        live.stop()


def _users(ctx, names_roles):
    with ctx.sessions() as s:
        for name, role in names_roles:
            ctx.auth.create_user(s, name, PASSWORD, role)
        s.commit()


def test_query_claim_submit_approve_export(live_server, wafer_file, tmp_path, monkeypatch) -> None:
    url, ctx = live_server
    annotators = [f"ann{i}" for i in range(10)]
    _users(ctx, [("eng", "engineer"), ("rev", "engineer")] + [(a, "annotator") for a in annotators])
    eng = ServerClient.login(url, "eng", PASSWORD)
    path = wafer_file(14, seed=71)
    truth = {r.wafer.content_hash(): r.mask.labels for r in read_any(path)}
    uploaded = eng.upload(path)["wafers"]
    gt = {w["id"]: truth[w["content_hash"]] for w in uploaded}

    # 1. the engineer runs a query (the wafers have no predictions yet: the query makes them)
    rnd = eng.query(strategy="hybrid", batch_size=8, seed=3)
    assert rnd["number"] == 1 and len(rnd["items"]) == 8 and rnd["candidates"] == 14

    # 2. two annotators claim at the same moment: disjoint items
    pair = [ServerClient.login(url, a, PASSWORD) for a in annotators[:2]]
    barrier = threading.Barrier(2)

    def claim(api):
        barrier.wait()
        return api.claim_next()

    with ThreadPoolExecutor(2) as pool:
        claims = list(pool.map(claim, pair))
    items = [c["item"] for c in claims]
    assert items[0]["id"] != items[1]["id"] and {i["state"] for i in items} == {"claimed"}

    # 3. each labels its wafer, starting from the model's pre-annotation, and submits
    submitted = {}
    for api, item in zip(pair, items, strict=True):
        wid = item["wafer"]["id"]
        dies = api.wafer_grid(wid)
        pre = api.prediction_labels(item["prediction_id"])
        assert pre.shape == dies.shape == gt[wid].shape
        assert ((pre != 255) == (dies == 2)).all()  # the model labels exactly the failing dies
        ann = api.create_annotation(
            wid, gt[wid], source="corrected_prediction", prediction_id=item["prediction_id"], time_spent_s=42
        )
        ann = api.submit_annotation(ann["id"], ann["version"], add_time_s=8)
        assert ann["status"] == "submitted"
        submitted[wid] = ann

    # 4. a reviewer approves both
    rev = ServerClient.login(url, "rev", PASSWORD)
    review = rev.review_list()
    assert {r["annotation"]["id"] for r in review} == {a["id"] for a in submitted.values()}
    for r in review:
        assert rev.approve(r["annotation"]["id"], r["annotation"]["version"])["ground_truth"] is True

    # 5. the export validates with pycocotools and decodes to exactly the submitted masks
    doc = eng.export_coco()
    (tmp_path / "export.json").write_text(json.dumps(doc))
    coco = COCO(str(tmp_path / "export.json"))
    images = coco.loadImgs(coco.getImgIds())
    assert sorted(img["wafer_db_id"] for img in images) == sorted(submitted)
    for img in images:
        got = np.full((img["height"], img["width"]), 255, np.uint8)
        for a in coco.loadAnns(coco.getAnnIds(imgIds=img["id"])):
            got[coco.annToMask(a).astype(bool)] = a["category_id"] - 1
        assert np.array_equal(got, gt[img["wafer_db_id"]])
    stats = eng.stats()
    (rs,) = stats["rounds"]
    assert (rs["labelled"], rs["approved"], rs["queued"], rs["in_progress"]) == (2, 2, 6, 0)
    assert {a["username"]: a["submitted"] for a in stats["annotators"]} == {"ann0": 1, "ann1": 1}
    assert all(a["time_spent_s"] == 50 for a in stats["annotators"])

    # 6. ten annotators race for the six items left: each is handed out exactly once
    crowd = [ServerClient.login(url, a, PASSWORD) for a in annotators]
    start = threading.Barrier(len(crowd))

    def race(api):
        start.wait()
        got = api.claim_next()
        return got["item"]["id"] if got else None

    with ThreadPoolExecutor(len(crowd)) as pool:
        won = list(pool.map(race, crowd))
    taken = [i for i in won if i is not None]
    # ann0 and ann1 hold nothing now (their items are done), so all ten compete
    assert len(taken) == 6 and len(set(taken)) == 6, won
    assert eng.queue(state="claimed")["total"] == 6 and eng.queue(state="queued")["total"] == 0

    # 7. the CLI against the same server: export (token from the environment) and import
    monkeypatch.setenv("WAFERDESK_TOKEN", eng.http.headers["Authorization"].split()[1])
    assert main(["coco", "export", "--server", url, "--out", str(tmp_path / "cli.json")]) == 0
    cli_doc = json.loads((tmp_path / "cli.json").read_text())
    assert {**cli_doc, "info": {}} == {**doc, "info": {}}
    assert main(["coco", "import", str(tmp_path / "cli.json"), "--server", url, "--status", "approved"]) == 0
    again = eng.export_coco()
    assert {**again, "info": {}} == {**doc, "info": {}}
    for c in [eng, rev, *pair, *crowd]:
        c.close()
