"""The app factory: ``create_app(settings)`` -> a FastAPI app with its own context.

Start-up (the lifespan) migrates the database and registers the start-up models; nothing
happens at import time, so tests build as many independent apps as they like.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.concurrency import run_in_threadpool

from . import __doc__ as _server_doc
from .api.deps import check_routes_declare_permissions
from .api.errors import install_error_handlers
from .api.middleware import RequestContextMiddleware
from .api.routes import ROUTERS
from .context import ServerContext
from .core.config import Settings, load_settings
from .core.logging import install_request_id_factory

log = logging.getLogger(__name__)
API_VERSION = "1"


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or load_settings()
    install_request_id_factory()
    ctx = ServerContext.build(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.is_development:
            log.warning("running in development mode (WAFERDESK_ENV=development); set it to production when deployed")
        await run_in_threadpool(ctx.start)
        try:
            yield
        finally:
            ctx.close()

    from waferdesk import __version__

    app = FastAPI(
        title="WaferDesk server",
        version=__version__,
        description=(_server_doc or "").split("\n\n")[0],
        lifespan=lifespan,
        docs_url="/docs" if settings.docs_enabled else None,
        redoc_url="/redoc" if settings.docs_enabled else None,
        openapi_url="/openapi.json" if settings.docs_enabled else None,
    )
    app.state.ctx = ctx
    for router in ROUTERS:
        app.include_router(router)
    check_routes_declare_permissions(app.routes)
    install_error_handlers(app)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["*"],
            allow_headers=["*"],
            expose_headers=["X-Request-ID"],
        )
    app.add_middleware(RequestContextMiddleware, max_body=settings.max_request_bytes, metrics=ctx.metrics)
    return app
