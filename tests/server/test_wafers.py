"""Wafer upload (good, bad, duplicate, too large), list with filters and pages, get, delete."""

from __future__ import annotations

import os

import numpy as np
from server_helpers import upload
from sqlalchemy import func, select

from server.db.models import Wafer
from waferdesk.core.formats import read_any


def _files(*paths):
    return [("files", (p.name, p.read_bytes(), "application/octet-stream")) for p in paths]


def test_upload_stores_every_wafer_and_gets_them_back_exactly(client, as_role, wafer_file) -> None:
    a, b = wafer_file(3, seed=1, lot="LOT-A"), wafer_file(2, seed=2, lot="LOT-B")
    body = upload(client, as_role("engineer"), a, b)
    assert body["created"] == 5 and body["existing"] == 0
    assert [w["file"] for w in body["wafers"]] == [a.name] * 3 + [b.name] * 2
    originals = [r.wafer for r in read_any(a) + read_any(b)]
    for item, wafer in zip(body["wafers"], originals, strict=True):
        assert item["content_hash"] == wafer.content_hash()
        assert item["source_format"] == "wdm" and item["created"] is True
        got = client.get(f"/wafers/{item['id']}", headers=as_role("viewer")).json()
        assert np.array_equal(np.array(got["dies"], dtype=np.uint8), wafer.dies)
        assert (got["lot"], got["wafer_id"], got["rows"], got["cols"]) == (wafer.lot, wafer.wafer_id, *wafer.shape)
        assert got["n_fail"] == wafer.n_fail and got["n_dies"] == wafer.n_dies
    # the stored row rebuilds the identical WaferMap (same content hash): the cache key is sound
    from server.services.wafers import to_wafer_map

    with client.app.state.ctx.sessions() as s:
        for item, wafer in zip(body["wafers"], originals, strict=True):
            assert to_wafer_map(s.get(Wafer, item["id"])).content_hash() == wafer.content_hash()


def test_uploading_the_same_wafers_again_stores_nothing_new(client, as_role, wafer_file) -> None:
    path = wafer_file(4, seed=3)
    first = upload(client, as_role("engineer"), path)
    again = upload(client, as_role("admin"), path)
    assert again["created"] == 0 and again["existing"] == 4
    assert [w["id"] for w in again["wafers"]] == [w["id"] for w in first["wafers"]]
    assert client.get("/wafers", headers=as_role("viewer")).json()["total"] == 4


def test_a_bad_file_is_named_and_nothing_is_stored(client, as_role, wafer_file, tmp_path) -> None:
    good = wafer_file(2, seed=4)
    broken = tmp_path / "broken.wdm"
    broken.write_bytes(b"PK\x03\x04 this is not a zip archive at all")
    unknown = tmp_path / "notes.docx"
    unknown.write_text("lot,wafer\n")
    empty = tmp_path / "empty.wdm"
    empty.write_bytes(b"")
    r = client.post("/wafers", headers=as_role("engineer"), files=_files(good, broken, unknown, empty))
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["code"] == "bad_file" and err["message"].startswith("broken.wdm: ")
    assert "nothing was stored" in err["message"]
    named = {d["file"]: d["reason"] for d in err["details"]}
    assert set(named) == {"broken.wdm", "notes.docx", "empty.wdm"}
    assert "zip" in named["broken.wdm"]
    assert "unsupported" in named["notes.docx"] and ".docx" in named["notes.docx"]
    assert named["empty.wdm"] == "the file is empty"
    assert "/tmp" not in r.text  # the server's temp paths never leak
    assert client.get("/wafers", headers=as_role("viewer")).json()["total"] == 0


def test_size_limits_answer_413_naming_the_file(app_factory, wafer_file, tmp_path) -> None:
    from server_helpers import bearer, create_user, login

    client = app_factory(max_file_bytes=2048, max_request_bytes=200_000)
    create_user(client, "eng", "engineer")
    h = bearer(login(client, "eng"))
    big = wafer_file(6, seed=5, name="big.wdm")
    assert 2048 < big.stat().st_size < 200_000
    r = client.post("/wafers", headers=h, files=_files(big))
    assert r.status_code == 413 and r.json()["error"]["code"] == "file_too_large"
    assert r.json()["error"]["message"].startswith("big.wdm: ")
    huge = tmp_path / "huge.wdm"  # refused on its Content-Length, before its content is read
    huge.write_bytes(os.urandom(250_000))
    r = client.post("/wafers", headers=h, files=_files(huge))
    assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"
    assert r.headers["x-request-id"] == r.json()["error"]["request_id"]


def test_list_filters_and_pages(client, as_role, wafer_file) -> None:
    upload(client, as_role("engineer"), wafer_file(3, seed=7, lot="L1"), wafer_file(4, seed=8, lot="L2"))
    h = as_role("viewer")
    page = client.get("/wafers", params={"lot": "L2"}, headers=h).json()
    assert page["total"] == 4 and {w["lot"] for w in page["items"]} == {"L2"}
    p1 = client.get("/wafers", params={"limit": 3, "offset": 0}, headers=h).json()
    p2 = client.get("/wafers", params={"limit": 3, "offset": 3}, headers=h).json()
    p3 = client.get("/wafers", params={"limit": 3, "offset": 6}, headers=h).json()
    ids = [w["id"] for w in p1["items"] + p2["items"] + p3["items"]]
    assert p1["total"] == 7 and len(ids) == 7 and len(set(ids)) == 7 and ids == sorted(ids, reverse=True)
    today = p1["items"][0]["created_at"][:10]
    assert client.get("/wafers", params={"created_from": today, "created_to": today}, headers=h).json()["total"] == 7
    assert client.get("/wafers", params={"created_from": "2999-01-01"}, headers=h).json()["total"] == 0
    assert client.get("/wafers", params={"created_to": "2000-01-01T00:00:00Z"}, headers=h).json()["total"] == 0
    assert client.get("/wafers", params={"verdict": "unpredicted"}, headers=h).json()["total"] == 7
    r = client.get("/wafers", params={"created_from": "yesterday"}, headers=h)
    assert r.status_code == 422 and "created_from" in r.json()["error"]["message"]
    r = client.get("/wafers", params={"limit": 0}, headers=h)
    assert r.status_code == 422 and r.json()["error"]["details"][0]["field"] == "query field limit"


def test_delete_is_for_admins(client, as_role, wafer_file) -> None:
    wid = upload(client, as_role("engineer"), wafer_file(1, seed=9))["wafers"][0]["id"]
    r = client.delete(f"/wafers/{wid}", headers=as_role("engineer"))
    assert r.status_code == 403
    assert client.delete(f"/wafers/{wid}", headers=as_role("admin")).status_code == 204
    r = client.get(f"/wafers/{wid}", headers=as_role("viewer"))
    assert r.status_code == 404 and r.json()["error"]["code"] == "wafer_not_found"
    assert client.delete(f"/wafers/{wid}", headers=as_role("admin")).status_code == 404


def test_get_without_grid(client, as_role, wafer_file) -> None:
    wid = upload(client, as_role("engineer"), wafer_file(1, seed=10))["wafers"][0]["id"]
    got = client.get(f"/wafers/{wid}", params={"grid": False}, headers=as_role("annotator")).json()
    assert got["dies"] is None and got["rows"] > 0


def test_a_wafer_stored_concurrently_is_reused_not_duplicated(client, wafer_file) -> None:
    """Upload A looked the hashes up, upload B stored one of them meanwhile: A reuses B's row."""
    from server.services.wafers import _insert, store_records

    recs = read_any(wafer_file(2, seed=11))
    items = [(r, "wdm", "x.wdm") for r in recs]
    ctx = client.app.state.ctx
    with ctx.sessions() as b:  # the other upload wins the race for wafer 0
        ((row_b, created_b),) = store_records(b, items[:1], None)
        b.commit()
    assert created_b
    with ctx.sessions() as a:
        existing: dict = {}
        todo = {r.wafer.content_hash(): item for r, item in zip(recs, items, strict=True)}
        created = _insert(a, todo, existing, None)  # as if its lookup had found nothing
        a.commit()
        h0, h1 = (r.wafer.content_hash() for r in recs)
        assert set(created) == {h1} and existing[h0].id == row_b.id
    with ctx.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Wafer)) == 2


def test_every_format_the_core_reads_is_accepted(client, as_role, tmp_path) -> None:
    """read_any picks the reader: WM-811K .npz, SEMI G85 .xml, CSV die lists, .wdm, in one upload."""
    from waferdesk.core.formats import write_any
    from waferdesk.core.synth import generate

    recs = list(generate(4, seed=31))
    paths = [
        write_any(tmp_path / "a.npz", recs[:1])[0],
        write_any(tmp_path / "b.xml", recs[1:2])[0],
        write_any(tmp_path / "c.csv", recs[2:3])[0],
        write_any(tmp_path / "d.wdm", recs[3:])[0],
    ]
    body = upload(client, as_role("engineer"), *paths)
    assert body["created"] == 4
    assert [w["source_format"] for w in body["wafers"]] == ["npz", "xml", "csv", "wdm"]
    for item, rec in zip(body["wafers"], recs, strict=True):
        got = client.get(f"/wafers/{item['id']}", headers=as_role("viewer")).json()
        assert np.array_equal(np.array(got["dies"], dtype=np.uint8), rec.wafer.dies), item["file"]


def test_pickle_uploads_can_be_turned_off(app_factory, tmp_path) -> None:
    import pickle

    from server_helpers import bearer, create_user, login

    client = app_factory(accept_pickle=False)
    create_user(client, "eng", "engineer")
    h = bearer(login(client, "eng"))
    sneaky = tmp_path / "looks-innocent.csv"
    sneaky.write_bytes(pickle.dumps({"waferMap": [[1]]}, protocol=4))
    r = client.post("/wafers", headers=h, files=_files(sneaky))
    assert r.status_code == 422, r.text
    assert r.json()["error"]["details"] == [
        {
            "file": "looks-innocent.csv",
            "reason": "pickle uploads are turned off on this server (WAFERDESK_ACCEPT_PICKLE)",
        }
    ]


def test_pass_bins_say_which_csv_bins_pass(client, as_role, tmp_path) -> None:
    path = tmp_path / "bins.csv"
    path.write_text("x,y,bin\n0,0,1\n1,0,3\n0,1,7\n1,1,3\n")
    h = as_role("engineer")
    files = [("files", (path.name, path.read_bytes(), "text/csv"))]
    w = client.post("/wafers", headers=h, files=files, data={"pass_bins": "1, 3"}).json()["wafers"][0]
    assert (w["n_dies"], w["n_fail"]) == (4, 1)  # only bin 7 fails
    r = client.post("/wafers", headers=h, files=files, data={"pass_bins": "one"})
    assert r.status_code == 422 and "pass_bins" in r.json()["error"]["message"]


def test_a_wafer_text_with_a_nul_character_fails_the_upload_naming_file_and_field(client, as_role, tmp_path) -> None:
    """Postgres cannot store NUL in text: a 422 naming the file, wafer and field, on both backends."""
    from waferdesk.core.formats import write_any
    from waferdesk.core.wafer import WaferMap

    dies = np.ones((4, 4), dtype=np.uint8)
    dies[1, 1] = 2
    [good] = write_any(tmp_path / "good.wdm", [WaferMap(dies=dies, lot="LOT-OK", wafer_id="01")])
    [bad_lot] = write_any(tmp_path / "nul-lot.wdm", [WaferMap(dies=dies, lot="A\x00B", wafer_id="01")])
    [bad_extra] = write_any(
        tmp_path / "nul-extra.wdm", [WaferMap(dies=dies, lot="L", wafer_id="02", extra={"k": "v\x00"})]
    )
    r = client.post("/wafers", headers=as_role("engineer"), files=_files(good, bad_lot, bad_extra))
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["code"] == "bad_file" and "nothing was stored" in err["message"]
    named = {d["file"]: d["reason"] for d in err["details"]}
    assert named == {
        "nul-lot.wdm": "wafer 0: lot contains a NUL (0x00) character",
        "nul-extra.wdm": "wafer 0: extra field 'k' contains a NUL (0x00) character",
    }
    assert client.get("/wafers", headers=as_role("viewer")).json()["total"] == 0


def test_dates_at_the_ends_of_the_calendar_are_answered_not_a_500(client, as_role, wafer_file) -> None:
    upload(client, as_role("engineer"), wafer_file(2, seed=5))
    h = as_role("viewer")
    # the end of the last day there is: no upper bound at all
    assert client.get("/wafers", params={"created_to": "9999-12-31"}, headers=h).json()["total"] == 2
    assert client.get("/wafers", params={"created_from": "0001-01-01"}, headers=h).json()["total"] == 2
    for field, value in (("created_to", "9999-12-31T23:00:00-05:00"), ("created_from", "0001-01-01T00:00:00+05:00")):
        r = client.get("/wafers", params={field: value}, headers=h)
        assert r.status_code == 422, r.text
        assert r.json()["error"]["message"].startswith(f"{field}: {value!r} is outside the dates"), r.text
    r = client.post("/annotations/export", json={"date_to": "9999-12-31"}, headers=as_role("engineer"))
    assert r.status_code == 200 and r.json()["images"] == []
    r = client.post("/annotations/export", json={"date_from": "0001-01-01T00:00:00+01:00"}, headers=as_role("engineer"))
    assert r.status_code == 422 and r.json()["error"]["message"].startswith("body field date_from: ")


def test_a_long_file_name_keeps_its_suffix(client, as_role, tmp_path) -> None:
    """Names are shortened to 200 characters for answers; the suffix (which picks the reader) stays."""
    name = "LOT-" + "x" * 300 + ".csv"
    r = client.post("/wafers", headers=as_role("engineer"), files=[("files", (name, b"x,y,pass\n0,0,1\n1,0,0\n"))])
    assert r.status_code == 201, r.text
    w = r.json()["wafers"][0]
    assert w["source_format"] == "csv" and len(w["file"]) == 200 and w["file"].endswith("x.csv")


def test_the_verdict_filter_takes_like_wildcards_literally(client, as_role, wafer_file) -> None:
    from server.db.models import Prediction

    ids = [w["id"] for w in upload(client, as_role("engineer"), wafer_file(4, seed=12))["wafers"]]
    verdicts = dict(zip(ids, ["edge", "edge+scratch", "none", "ring+center+random"], strict=True))
    with client.app.state.ctx.sessions() as s:
        for wid, verdict in verdicts.items():
            s.add(
                Prediction(
                    wafer_id=wid,
                    model_version="t",
                    model_sha256="0" * 64,
                    mask=b"",
                    counts={},
                    verdict=verdict,
                    latency_ms=1.0,
                )
            )
        s.commit()
    h = as_role("viewer")

    def found(verdict: str) -> set[int]:
        r = client.get("/wafers", params={"verdict": verdict}, headers=h)
        assert r.status_code == 200, r.text
        return {w["id"] for w in r.json()["items"]}

    assert found("edge") == {ids[0], ids[1]} and found("scratch") == {ids[1]} and found("center") == {ids[3]}
    assert found("none") == {ids[2]}
    for wild in ("%", "_", "%%", "e%", "%e", "edg_", "_dge", "c_nter", "ring+%", "/", "/%"):
        assert found(wild) == set(), wild
