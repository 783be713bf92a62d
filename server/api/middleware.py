"""Request context as plain ASGI middleware: request id, body limit, access log, 500s, metrics.

- Every response carries ``X-Request-ID`` (the client's, when it sent a sane one, else a new
  one), and every log line written while serving the request carries it too.
- A request body larger than ``max_request_bytes`` is refused with 413 as soon as the
  ``Content-Length`` (or the streamed byte count) says so, before it fills a disk.
- An unexpected exception is logged with its stack trace and answered as a 500 in the one
  error shape; the client never sees the trace.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..core.logging import request_id_var
from ..services.metrics import Metrics
from .errors import error_body

log = logging.getLogger("server.access")
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
REQUEST_ID_HEADER = "x-request-id"


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, max_body: int, metrics: Metrics) -> None:
        self.app = app
        self.max_body = max_body
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        incoming = headers.get(REQUEST_ID_HEADER, "")
        request_id = incoming if _REQUEST_ID_RE.match(incoming) else uuid.uuid4().hex
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        state = {"status": 500, "started": False, "replied": False}

        async def send_wrapper(message: Message) -> None:
            if state["replied"]:
                return  # we answered already (413 mid-body); the app's late answer is dropped
            if message["type"] == "http.response.start":
                state["status"] = message["status"]
                state["started"] = True
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        async def reply(status: int, code: str, text: str, extra: dict[str, Any] | None = None) -> None:
            if state["started"] or state["replied"]:
                return
            body = json.dumps(error_body(code, text, extra)).encode()
            await send_wrapper(
                {
                    "type": "http.response.start",
                    "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
                }
            )
            await send_wrapper({"type": "http.response.body", "body": body})
            state["replied"] = True

        async def too_large() -> None:
            limit = self.max_body
            await reply(413, "request_too_large", f"request body over the {limit}-byte limit", {"limit_bytes": limit})

        received = 0

        async def receive_wrapper() -> Message:
            nonlocal received
            if state["replied"]:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    await too_large()
                    return {"type": "http.disconnect"}  # the app stops reading; its answer is dropped
            return message

        try:
            declared = headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > self.max_body:
                await too_large()
            else:
                await self.app(scope, receive_wrapper, send_wrapper)
        except Exception:
            if state["replied"]:  # the app failed reading a body we had cut off: expected
                log.debug("request cut off at the body limit", exc_info=True)
                return
            log.exception("unhandled error in %s %s", scope.get("method"), scope.get("path"))
            await reply(500, "internal_error", "internal server error; quote the request id when reporting it")
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            route_path = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "")
            status = state["status"]
            self.metrics.http_requests.labels(method=method, route=route_path, status=str(status)).inc()
            self.metrics.http_latency.labels(method=method, route=route_path).observe(elapsed)
            log.info("%s %s -> %s in %.1f ms", method, scope.get("path"), status, elapsed * 1000.0)
            request_id_var.reset(token)
