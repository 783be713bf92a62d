"""A local WaferDesk server with a filled queue, for ``waferdesk bench-app --queue-server`` and the
queue / review screenshots.

    PYTHONPATH=. python scripts/serve_queue.py [--model M.onnx] [--wafers 40] [--size 300] [--reviews 0]
        [-- COMMAND ...]

Starts ``python -m server serve`` on a free loopback port (SQLite in a temp folder), creates
``eng`` (engineer) and ``ann`` (annotator) with password ``queue-demo-password``, uploads
``--wafers`` synthetic wafers, queues them all (the query predicts them: the pre-annotations),
submits ``--reviews`` of them as ``ann`` with the generator's ground truth as the corrected labels
(for review mode), then runs COMMAND with
``WAFERDESK_SERVER`` / ``WAFERDESK_USER`` / ``WAFERDESK_PASSWORD`` set and stops the server.
Without ``--model`` the tiny test model (tests/model_fixtures.py) serves, so the numbers are
the desktop's and the server's overhead, not inference time.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PASSWORD = "queue-demo-password"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--wafers", type=int, default=40)
    ap.add_argument("--size", type=int, default=300, help="dies across each wafer (0: the generator's sizes)")
    ap.add_argument("--reviews", type=int, default=0, help="queue wafers submitted by ann for review")
    ap.add_argument("command", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the server on the way out
    sys.path[:0] = [str(REPO), str(REPO / "tests")]
    from waferdesk.app.bench import _wafers
    from waferdesk.client.api import ServerClient
    from waferdesk.core.formats import write_wdm
    from waferdesk.core.synth import generate

    tmp = Path(tempfile.mkdtemp(prefix="waferdesk-queue-"))
    model = args.model
    if model is None:
        from model_fixtures import make_tiny_model

        model = make_tiny_model(tmp / "model", kind="robust", version="demo-1")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "WAFERDESK_ENV": "development",
        "DATABASE_URL": f"sqlite:///{tmp / 'server.db'}",
        "WAFERDESK_DATA_DIR": str(tmp / "data"),
        "WAFERDESK_JWT_SECRET": "queue-demo-" + "x" * 40,
        "WAFERDESK_REGISTER_DEFAULT_MODEL": "false",
        "WAFERDESK_MODEL_PATH": str(model),
        "WAFERDESK_ONNX_PROVIDERS": "cpu",
        "WAFERDESK_ARGON2_TIME_COST": "1",
        "WAFERDESK_ARGON2_MEMORY_KIB": "1024",
        "WAFERDESK_ARGON2_PARALLELISM": "1",
    }
    py = sys.executable
    for user, role in (("eng", "engineer"), ("ann", "annotator")):
        subprocess.run(
            [py, "-m", "server", "create-user", user, "--role", role, "--password-stdin"],
            input=PASSWORD + "\n",
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
    server = subprocess.Popen([py, "-m", "server", "serve", "--port", str(port)], env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        end = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > end or server.poll() is not None:
                    raise RuntimeError("the server did not start") from None
                time.sleep(0.1)
        recs = _wafers(args.size, args.wafers) if args.size else list(generate(args.wafers, seed=7))
        path = write_wdm(tmp / "queue.wdm", recs)
        with ServerClient.login(url, "eng", PASSWORD) as eng:
            uploaded = eng.upload(path)["wafers"]
            rnd = eng.query(strategy="uncertainty", batch_size=args.wafers)
        print(f"serve_queue: {url}, {len(rnd['items'])} wafers queued (round {rnd['number']})", flush=True)
        by_hash = {r.wafer.content_hash(): r.mask.labels for r in recs if r.mask is not None}
        truth = {w["id"]: by_hash[w["content_hash"]] for w in uploaded if w["content_hash"] in by_hash}
        with ServerClient.login(url, "ann", PASSWORD) as ann:
            for _ in range(args.reviews):  # the annotator's corrections: the generator's ground truth
                item = ann.claim_next()["item"]
                labels = truth[item["wafer"]["id"]]
                ann.create_annotation(
                    item["wafer"]["id"],
                    labels,
                    source="corrected_prediction",
                    prediction_id=item["prediction_id"],
                    submit=True,
                    time_spent_s=35.0,
                )
        if not args.command:
            print("serve_queue: serving until Ctrl+C", flush=True)
            server.wait()
            return 0
        cmd = args.command[1:] if args.command[0] == "--" else args.command
        child_env = {**os.environ, "WAFERDESK_SERVER": url, "WAFERDESK_USER": "ann", "WAFERDESK_PASSWORD": PASSWORD}
        return subprocess.run(cmd, check=False, env=child_env).returncode
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    sys.exit(main())
