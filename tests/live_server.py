"""A real WaferDesk server for the desktop tests: uvicorn on loopback, SQLite in the test's
temp folder, the tiny model registered and active (as tests/server/test_annotation_flow.py
starts one, but on SQLite so it needs nothing installed)."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from waferdesk.core.formats import write_wdm
from waferdesk.core.synth import generate

TEST_SECRET = "test-secret-" + "x" * 40
PASSWORD = "correct horse battery"


@dataclass
class LiveServer:
    url: str
    ctx: Any  # server.context (services, sessions)
    server: Any
    thread: threading.Thread

    def add_users(self, *names_roles: tuple[str, str]) -> None:
        with self.ctx.sessions() as s:
            for name, role in names_roles:
                self.ctx.auth.create_user(s, name, PASSWORD, role)
            s.commit()

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def serve_in_thread(
    app: Any, port: int, host: str = "127.0.0.1", timeout: float = 60, **config: Any
) -> tuple[Any, threading.Thread]:
    """Run ``app`` with uvicorn in a daemon thread; returns once it accepts connections.
    Stop it with ``server.should_exit = True`` and ``thread.join()``."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", **config))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    return server, thread


def start_server(tmp_path: Path, model_path: Path | None, port: int = 0, **settings: Any) -> LiveServer:
    """Start (or, with the ``port`` of a stopped one and the same ``tmp_path``, restart) a server."""
    from server.app import create_app
    from server.core.config import load_settings

    values: dict[str, Any] = {
        "environment": "development",
        "database_url": f"sqlite:///{tmp_path / 'server.db'}",
        "data_dir": tmp_path / "server-data",
        "jwt_secret": TEST_SECRET,
        "redis_url": None,
        "register_default_model": False,
        "model_path": model_path,
        "argon2_time_cost": 1,
        "argon2_memory_kib": 1024,
        "argon2_parallelism": 1,
        "onnx_providers": "cpu",
    }
    values.update(settings)
    app = create_app(load_settings(**values))
    port = port or free_port()
    server, thread = serve_in_thread(app, port)
    return LiveServer(f"http://127.0.0.1:{port}", app.state.ctx, server, thread)


def seed_queue(live: LiveServer, tmp_path: Path, n: int = 6, batch: int = 4, seed: int = 5):
    """An engineer uploads ``n`` synthetic wafers and queues ``batch`` of them; returns the round."""
    from waferdesk.client.api import ServerClient

    recs = list(generate(n, seed=seed))
    path = write_wdm(tmp_path / f"queue-{seed}.wdm", recs)
    with ServerClient.login(live.url, "eng", PASSWORD) as eng:
        eng.upload(path)
        return eng.query(strategy="uncertainty", batch_size=batch, seed=seed)


class LosingTransport(httpx.BaseTransport):
    """Forwards to the real server; ``lose`` answers (the request DID reach the server) or go ``offline``."""

    def __init__(self) -> None:
        self.real = httpx.HTTPTransport()
        self.lose: set[tuple[str, str]] = set()  # (method, path prefix) whose next answer is lost
        self.offline = False

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if self.offline:
            raise httpx.ConnectError("connection refused", request=request)
        response = self.real.handle_request(request)
        for method, prefix in list(self.lose):
            if request.method == method and request.url.path.startswith(prefix):
                self.lose.discard((method, prefix))
                response.read()
                raise httpx.ReadTimeout("the answer was lost", request=request)
        return response
