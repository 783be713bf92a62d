"""Server throughput, in process (ASGI, no network): upload, batch prediction, cache hits.

    PYTHONPATH=. python scripts/bench_server.py [--db sqlite|postgresql://...] [--model M.onnx]

Prints medians of ``--repeat`` runs. Without ``--model`` it uses the tiny test model
(tests/model_fixtures.py), so the prediction numbers are the server's own overhead (ingest,
storage, cache, JSON) plus a near-free network; with the real model they include inference.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def median_ms(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000.0)
    return statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--db", default="sqlite", help="sqlite (a temp file) or a postgresql:// admin URL")
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--wafers", type=int, default=1000, help="wafers in the upload benchmark")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()

    from fastapi.testclient import TestClient

    from server.app import create_app
    from server.core.config import load_settings
    from waferdesk.core.formats import write_wdm
    from waferdesk.core.synth import generate

    tmp = Path(tempfile.mkdtemp(prefix="waferdesk-bench-"))
    model = args.model
    if model is None:
        sys.path.insert(0, str(REPO / "tests"))
        from model_fixtures import make_tiny_model

        model = make_tiny_model(tmp / "model")
    drop = None
    if args.db == "sqlite":
        url = f"sqlite:///{tmp / 'bench.db'}"
    else:
        import psycopg

        name = f"waferdesk_bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(args.db, autocommit=True) as c:
            c.execute(f'CREATE DATABASE "{name}"')
        url = args.db.rsplit("/", 1)[0] + "/" + name

        def drop() -> None:
            with psycopg.connect(args.db, autocommit=True) as c:
                c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    settings = load_settings(
        database_url=url, data_dir=tmp / "data", jwt_secret="b" * 40, model_path=model, register_default_model=False
    )
    try:
        with TestClient(create_app(settings)) as client:
            ctx = client.app.state.ctx
            with ctx.sessions() as s:
                ctx.auth.create_user(s, "bench", "a long bench password", "admin")
                s.commit()
            tok = client.post("/auth/login", data={"username": "bench", "password": "a long bench password"}).json()
            h = {"Authorization": f"Bearer {tok['access_token']}"}

            files = [write_wdm(tmp / f"up{i}.wdm", generate(args.wafers, seed=100 + i)) for i in range(args.repeat)]
            it = iter(files)

            def up() -> None:
                p = next(it)
                r = client.post("/wafers", headers=h, files=[("files", (p.name, p.read_bytes()))])
                assert r.status_code == 201 and r.json()["created"] == args.wafers, r.text

            ms = median_ms(up, args.repeat)
            print(
                f"upload {args.wafers} new wafers (.wdm, {files[0].stat().st_size / 1e6:.1f} MB): "
                f"{ms:.0f} ms median, {args.wafers / ms * 1000:.0f} wafers/s"
            )

            ids = [w["id"] for w in client.get("/wafers", headers=h, params={"limit": 500}).json()["items"]]
            batches = [ids[i * 100 : (i + 1) * 100] for i in range(args.repeat)]
            it_b = iter(batches)
            cold = median_ms(
                lambda: client.post(
                    "/predict/batch", headers=h, data={"wafer_ids": next(it_b)}, params={"mask": "none"}
                ),
                args.repeat,
            )
            warm = median_ms(
                lambda: client.post(
                    "/predict/batch", headers=h, data={"wafer_ids": batches[0]}, params={"mask": "none"}
                ),
                args.repeat,
            )
            one = median_ms(lambda: client.post("/predict", headers=h, data={"wafer_id": ids[0]}), args.repeat)
            stats = client.get("/stats", headers=h).json()
            print(f"/predict/batch 100 wafers, model runs: {cold:.0f} ms median ({cold / 100:.1f} ms/wafer)")
            print(f"/predict/batch 100 wafers, all cached: {warm:.0f} ms median ({warm / 100:.2f} ms/wafer)")
            print(f"/predict 1 cached wafer with its mask: {one:.1f} ms median")
            print(
                f"server-side latency p50/p90/p99 per wafer: {stats['latency']['p50_ms']} / "
                f"{stats['latency']['p90_ms']} / {stats['latency']['p99_ms']} ms; "
                f"cache hit rate {stats['cache']['hit_rate']}"
            )
            print(f"database {client.app.state.ctx.engine.dialect.name}, model {Path(model).name}")
    finally:
        if drop:
            drop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
