"""Prediction over HTTP with a real (tiny) ONNX model: results, storage, cache, batch limits."""

from __future__ import annotations

import numpy as np
import pytest
from server_helpers import bearer, create_user, login, upload

from waferdesk.core.formats import read_any, write_wdm
from waferdesk.core.inference import Segmenter
from waferdesk.core.records import WaferRecord


@pytest.fixture
def served(app_factory, tiny_model):
    """An app serving the tiny model, and an engineer's headers."""
    client = app_factory(model_path=tiny_model)
    create_user(client, "eng", "engineer")
    return client, bearer(login(client, "eng"))


@pytest.fixture(scope="module")
def reference(tiny_model):
    return Segmenter(tiny_model, providers="cpu", cache=False)


def test_predict_a_stored_wafer_then_answer_from_the_cache(served, wafer_file, reference) -> None:
    client, h = served
    path = wafer_file(1, seed=11)
    wafer = read_any(path)[0].wafer
    wid = upload(client, h, path)["wafers"][0]["id"]
    r = client.post("/predict", data={"wafer_id": wid}, headers=h)
    assert r.status_code == 200, r.text
    first = r.json()
    expect = reference.predict(wafer)
    assert first["source"] == "model" and first["cached"] is False
    assert np.array_equal(np.array(first["mask"], dtype=np.uint8), expect.mask.labels)
    assert first["verdict"] == expect.verdict and first["counts"] == dict(expect.summary.counts)
    assert first["model"]["sha256"] == reference.model_sha256 and first["model"]["version"] == "tiny-1"
    assert first["wafer"]["content_hash"] == wafer.content_hash()
    assert set(first["uncertainty"]) >= {"entropy_mean", "margin_mean"}
    second = client.post("/predict", data={"wafer_id": wid}, headers=h, params={"mask": "rle"}).json()
    assert second["source"] == "cache" and second["cached"] is True
    assert second["prediction_id"] == first["prediction_id"] and second["verdict"] == first["verdict"]
    runs = [v for v, n in second["mask"]["rle"] for _ in range(n)]
    assert np.array_equal(np.array(runs, dtype=np.uint8).reshape(wafer.shape), expect.mask.labels)
    # stored: readable by a viewer, with the same mask
    create_user(client, "vic", "viewer")
    v = bearer(login(client, "vic"))
    got = client.get(f"/predictions/{first['prediction_id']}", headers=v, params={"embedding": True}).json()
    assert np.array_equal(np.array(got["mask"], dtype=np.uint8), expect.mask.labels)
    assert np.allclose(got["embedding"], expect.embedding, atol=1e-5)
    listed = client.get(f"/wafers/{wid}/predictions", headers=v).json()
    assert [p["id"] for p in listed] == [first["prediction_id"]]
    assert client.get(f"/wafers/{wid}", headers=v).json()["latest_prediction"]["verdict"] == first["verdict"]


def test_predict_an_uploaded_file_stores_the_wafer(served, wafer_file, reference) -> None:
    client, h = served
    path = wafer_file(1, seed=12)
    files = {"file": (path.name, path.read_bytes(), "application/octet-stream")}
    r = client.post("/predict", files=files, headers=h)
    assert r.status_code == 200, r.text
    wafer = read_any(path)[0].wafer
    assert np.array_equal(np.array(r.json()["mask"], dtype=np.uint8), reference.predict(wafer).mask.labels)
    page = client.get("/wafers", headers=h).json()
    assert page["total"] == 1 and page["items"][0]["content_hash"] == wafer.content_hash()


def test_two_wafers_never_share_a_result(served, tmp_path) -> None:
    """Same die grid, different lot: two wafers, two content hashes, two stored predictions."""
    client, h = served
    a = read_any(write_wdm(tmp_path / "a.wdm", [WaferRecord(_wafer(lot="A"))]))[0].wafer
    path = write_wdm(tmp_path / "ab.wdm", [WaferRecord(a), WaferRecord(a.with_(lot="B"))])
    ids = [w["id"] for w in upload(client, h, path)["wafers"]]
    out = client.post("/predict/batch", data={"wafer_ids": ids}, headers=h).json()
    hashes = [res["wafer"]["content_hash"] for res in out["results"]]
    assert len(set(hashes)) == 2 and len({res["prediction_id"] for res in out["results"]}) == 2
    assert [res["source"] for res in out["results"]] == ["model", "model"]


def _wafer(lot: str):
    from waferdesk.core.synth import generate_record

    return generate_record(0, 3).wafer.with_(lot=lot)


def test_batch_keeps_order_counts_cache_hits_and_refuses_more_than_100(served, wafer_file) -> None:
    client, h = served
    ids = [w["id"] for w in upload(client, h, wafer_file(3, seed=13))["wafers"]]
    client.post("/predict", data={"wafer_id": ids[1]}, headers=h)  # one of them cached already
    extra = wafer_file(2, seed=14)
    files = [("files", (extra.name, extra.read_bytes(), "application/octet-stream"))]
    r = client.post("/predict/batch", data={"wafer_ids": ids}, files=files, headers=h)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["count"] == 5 and out["cache_hits"] == 1
    assert [res["wafer"]["id"] for res in out["results"]][:3] == ids
    assert [res["source"] for res in out["results"]] == ["model", "cache", "model", "model", "model"]
    assert out["results"][0]["mask"]["order"] == "C"  # the batch default is run-length
    r = client.post("/predict/batch", data={"wafer_ids": list(range(1, 102))}, headers=h)
    assert r.status_code == 413, r.text
    err = r.json()["error"]
    assert err["code"] == "batch_too_large" and "at most 100" in err["message"]
    assert err["details"] == {"limit": 100, "requested": 101}


def test_a_batch_over_the_limit_from_files_stores_nothing(app_factory, tiny_model, wafer_file) -> None:
    client = app_factory(model_path=tiny_model, max_batch=3)
    create_user(client, "eng", "engineer")
    h = bearer(login(client, "eng"))
    path = wafer_file(4, seed=15)
    files = [("files", (path.name, path.read_bytes(), "application/octet-stream"))]
    r = client.post("/predict/batch", files=files, headers=h)
    assert r.status_code == 413 and r.json()["error"]["details"] == {"limit": 3, "requested": 4}
    assert client.get("/wafers", headers=h).json()["total"] == 0


def test_predict_input_errors(served, wafer_file) -> None:
    client, h = served
    path = wafer_file(2, seed=16)
    files = {"file": (path.name, path.read_bytes(), "application/octet-stream")}
    r = client.post("/predict", files=files, headers=h)
    assert r.status_code == 422 and r.json()["error"]["code"] == "one_wafer_expected"
    assert path.name in r.json()["error"]["message"]
    r = client.post("/predict", headers=h)
    assert r.status_code == 422 and "exactly one" in r.json()["error"]["message"]
    r = client.post("/predict", data={"wafer_id": 424242}, headers=h)
    assert r.status_code == 404 and r.json()["error"]["code"] == "wafer_not_found"
    r = client.post("/predict", data={"wafer_id": "abc"}, headers=h)
    assert r.status_code == 422 and r.json()["error"]["details"][0]["field"] == "body field wafer_id"


def test_no_active_model_is_a_clear_503(client, as_role, wafer_file) -> None:
    wid = upload(client, as_role("engineer"), wafer_file(1, seed=17))["wafers"][0]["id"]
    r = client.post("/predict", data={"wafer_id": wid}, headers=as_role("engineer"))
    assert r.status_code == 503 and r.json()["error"]["code"] == "no_active_model"
    health = client.get("/health").json()
    assert health["status"] == "degraded" and health["checks"]["model"]["ok"] is False


def test_results_survive_a_restart_and_come_from_the_database(app_factory, tiny_model, wafer_file) -> None:
    client = app_factory(model_path=tiny_model)
    create_user(client, "eng", "engineer")
    h = bearer(login(client, "eng"))
    wid = upload(client, h, wafer_file(1, seed=18))["wafers"][0]["id"]
    first = client.post("/predict", data={"wafer_id": wid}, headers=h).json()
    restarted = app_factory(model_path=tiny_model)  # same database, empty in-process cache
    again = restarted.post("/predict", data={"wafer_id": wid}, headers=h).json()
    assert again["source"] == "db" and again["prediction_id"] == first["prediction_id"]
    assert again["mask"] == first["mask"]
    models = restarted.get("/models", headers=h).json()
    assert len(models) == 1 and models[0]["is_active"] and models[0]["source"] == "path"
    card = restarted.get(f"/models/{models[0]['id']}", headers=h).json()["card"]
    assert card["model_version"] == "tiny-1" and card["sha256"] == models[0]["sha256"]


def test_redis_cache_is_used_when_configured(app_factory, tiny_model, wafer_file, redis_url, cache_prefix) -> None:
    import redis

    client = app_factory(model_path=tiny_model, redis_url=redis_url, cache_prefix=cache_prefix)
    create_user(client, "eng", "engineer")
    h = bearer(login(client, "eng"))
    item = upload(client, h, wafer_file(1, seed=19))["wafers"][0]
    first = client.post("/predict", data={"wafer_id": item["id"]}, headers=h).json()
    r = redis.Redis.from_url(redis_url)
    key = f"{cache_prefix}{item['content_hash']}:{first['model']['sha256']}"
    assert r.exists(key) and 0 < r.ttl(key) <= 7 * 24 * 3600
    # a second app (another worker) shares the Redis cache, not the in-process one
    other = app_factory(model_path=tiny_model, redis_url=redis_url, cache_prefix=cache_prefix)
    again = other.post("/predict", data={"wafer_id": item["id"]}, headers=h).json()
    assert again["source"] == "cache" and again["mask"] == first["mask"]
    health = other.get("/health").json()["checks"]["cache"]
    assert health == {"ok": True, "backend": "redis", "detail": health["detail"]}
    r.close()


def test_stats_health_metrics_and_verdict_filter(served, wafer_file) -> None:
    client, h = served
    ids = [w["id"] for w in upload(client, h, wafer_file(6, seed=20))["wafers"]]
    client.post("/predict/batch", data={"wafer_ids": ids}, headers=h)  # 6 by the model
    client.post("/predict/batch", data={"wafer_ids": ids[:4]}, headers=h)  # 4 from the cache
    client.post("/predict", data={"wafer_id": ids[0]}, headers=h)  # 1 from the cache
    stats = client.get("/stats", headers=h).json()
    assert stats["requests"]["total"] == 3 and stats["requests"]["by_endpoint"] == {"batch": 2, "predict": 1}
    assert stats["wafers_served"] == {"total": 11, "by_source": {"model": 6, "cache": 5, "db": 0}}
    assert stats["cache"]["hits"] == 5 and stats["cache"]["hit_rate"] == round(5 / 11, 4)
    lat = stats["latency"]
    assert lat["window"] == 11 and 0 < lat["p50_ms"] <= lat["p90_ms"] <= lat["p99_ms"]
    preds = [client.get(f"/wafers/{i}", headers=h, params={"grid": False}).json()["latest_prediction"] for i in ids]
    details = [client.get(f"/predictions/{p['id']}", headers=h, params={"mask": "none"}).json() for p in preds]
    totals = {k: sum(d["counts"][k] for d in details) for k in stats["per_class_fail_dies"]}
    assert stats["per_class_fail_dies"] == totals and sum(totals.values()) > 0
    verdicts: dict[str, int] = {}
    for d in details:
        verdicts[d["verdict"]] = verdicts.get(d["verdict"], 0) + 1
    assert stats["verdicts"] == verdicts and stats["wafers"] == {"stored": 6, "predicted": 6}
    # the list filter agrees with the verdicts
    for verdict, n in verdicts.items():
        if "+" in verdict:
            continue
        page = client.get("/wafers", params={"verdict": verdict}, headers=h).json()
        assert page["total"] >= n
    assert client.get("/wafers", params={"verdict": "unpredicted"}, headers=h).json()["total"] == 0
    health = client.get("/health").json()
    assert health["status"] == "ok"
    assert health["checks"]["model"]["version"] == "tiny-1" and health["checks"]["model"]["loaded"] is True
    text = client.get("/metrics").text
    assert 'waferdesk_predictions_total{source="model"} 6.0' in text
    assert 'waferdesk_predictions_total{source="cache"} 5.0' in text
    assert 'waferdesk_cache_lookups_total{result="hit"} 5.0' in text
    assert "waferdesk_wafers_stored 6.0" in text
    assert 'waferdesk_http_requests_total{method="POST",route="/predict/batch",status="200"} 2.0' in text
    assert 'waferdesk_model_active{sha256="' in text


def test_deleting_a_wafer_deletes_its_predictions(served, wafer_file, app_factory) -> None:
    client, h = served
    wid = upload(client, h, wafer_file(1, seed=21))["wafers"][0]["id"]
    pid = client.post("/predict", data={"wafer_id": wid}, headers=h).json()["prediction_id"]
    create_user(client, "boss", "admin")
    admin = bearer(login(client, "boss"))
    assert client.delete(f"/wafers/{wid}", headers=admin).status_code == 204
    assert client.get(f"/predictions/{pid}", headers=h).status_code == 404
    assert client.get("/stats", headers=h).json()["wafers_served"]["total"] == 1  # the log row stays


def test_the_shipped_default_model_is_registered_on_first_start(app_factory, tiny_model, tmp_path, monkeypatch) -> None:
    import shutil

    from server.services import registry
    from waferdesk.core.modelcard import DEFAULT_MODEL_NAME, card_path_for

    shipped = tmp_path / "resources" / "models" / f"{DEFAULT_MODEL_NAME}.onnx"
    shipped.parent.mkdir(parents=True)
    shutil.copyfile(tiny_model, shipped)
    shutil.copyfile(card_path_for(tiny_model), card_path_for(shipped))
    monkeypatch.setattr(registry, "default_model_path", lambda: shipped)
    client = app_factory(register_default_model=True)
    create_user(client, "eng", "engineer")
    h = bearer(login(client, "eng"))
    models = client.get("/models", headers=h).json()
    assert [(m["source"], m["is_active"], m["version"]) for m in models] == [("default", True, "tiny-1")]
    # registered as a copy under the data folder: the registry never points into the package
    from server.db.models import RegisteredModel

    with client.app.state.ctx.sessions() as s:
        path = s.get(RegisteredModel, models[0]["id"]).artifact_path
    assert path.startswith(str(client.app.state.ctx.settings.data_dir))
    app_factory(register_default_model=True)  # a second start registers nothing new
    assert len(client.get("/models", headers=h).json()) == 1


def test_a_named_model_that_cannot_load_stops_the_start(app_factory, tmp_path) -> None:
    from waferdesk.core.errors import ModelError

    with pytest.raises(ModelError, match="model file not found"):
        app_factory(model_path=tmp_path / "missing.onnx")


def test_a_prediction_stored_concurrently_is_reused(served, wafer_file) -> None:
    """Request A missed the cache and the database, request B stored wafer 0 meanwhile."""
    from sqlalchemy import func, select

    from server.db.models import Prediction, Wafer
    from server.services.prediction import PredictionService, Result
    from server.services.registry import active_model
    from server.services.wafers import to_wafer_map

    client, h = served
    ids = [w["id"] for w in upload(client, h, wafer_file(2, seed=22))["wafers"]]
    first = client.post("/predict", data={"wafer_id": ids[0]}, headers=h).json()  # B's row
    ctx = client.app.state.ctx
    with ctx.sessions() as s:
        wafers = [s.get(Wafer, i) for i in ids]
        model = active_model(s)
        stored = s.get(Prediction, first["prediction_id"])
        engine = ctx.predictor.segmenter(model)
        results = {
            ids[0]: (Result.from_row(stored, wafers[0]), "model"),
            ids[1]: (Result.from_engine(engine.predict(to_wafer_map(wafers[1]))), "model"),
        }
        rows = PredictionService._store_new(s, wafers, results, model, None)
        s.commit()
        assert rows[ids[0]].id == first["prediction_id"] and rows[ids[1]].id != first["prediction_id"]
        assert s.scalar(select(func.count()).select_from(Prediction)) == 2
