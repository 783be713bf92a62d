"""Typed dependencies every route uses: ``SessionDep``, ``CtxDep``, ``CurrentUser``, ``require(...)``.

``require(permission)`` is THE gate: it authenticates the bearer token (401 with a code
saying why: missing, invalid, expired, revoked) and checks the caller's role against
:data:`server.core.permissions.ROLES_FOR` (403). The ``training:worker`` routes take a
training job's own worker token instead; a person's token is refused there (403).
Each route declares exactly one, e.g.::

    @router.get("/wafers")
    def list_wafers(user: Annotated[User, Depends(require(Permission.WAFERS_READ))], ...)

    @router.get("/health", dependencies=[Depends(require(Permission.PUBLIC))])

:func:`route_permission` reads the declaration back; the app refuses to start when a route
has none, and the permission test walks every route with it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Annotated

from fastapi import Depends, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy.orm import Session
from starlette.routing import BaseRoute

from ..context import ServerContext
from ..core.errors import NotAuthenticatedError, PermissionDeniedError
from ..core.permissions import ANONYMOUS_ALLOWED, TOKEN_ONLY, Permission, allows
from ..db.models import User
from ..services.training import tokens as job_tokens
from ..services.training.jobs import authenticate_worker

# auto_error=False: a missing token is answered by `require` in the one error shape
oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/auth/login", auto_error=False)


def get_ctx(request: Request) -> ServerContext:
    return request.app.state.ctx


CtxDep = Annotated[ServerContext, Depends(get_ctx)]


def get_session(ctx: CtxDep) -> Iterator[Session]:
    """One session per request; whatever a route did not commit is rolled back."""
    session = ctx.sessions()
    try:
        yield session
    finally:
        session.close()


SessionDep = Annotated[Session, Depends(get_session)]


def client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


class PermissionCheck:
    """The dependency ``require(permission)`` returns; its ``permission`` is read by the tests."""

    def __init__(self, permission: Permission) -> None:
        self.permission = Permission(permission)

    def __repr__(self) -> str:
        return f"require({self.permission.value!r})"

    def __call__(
        self, request: Request, session: SessionDep, ctx: CtxDep, token: Annotated[str | None, Depends(oauth2_scheme)]
    ) -> User | None:
        if self.permission in ANONYMOUS_ALLOWED:
            return None
        if not token:
            raise NotAuthenticatedError(
                "authentication required: send 'Authorization: Bearer <access token>' (POST /auth/login)"
            )
        if self.permission in TOKEN_ONLY and job_tokens.looks_like_job_token(token):
            # a training worker: its job's token (the route reads the job from request.state)
            request.state.training_job = authenticate_worker(session, token)
            return None
        user, session_id = ctx.auth.user_for_access_token(session, token)
        request.state.user = user
        request.state.session_id = session_id
        if not allows(user.role, self.permission):
            raise PermissionDeniedError(
                f"role {user.role!r} may not do {self.permission.value!r}",
                details={"permission": self.permission.value, "role": user.role},
            )
        return user


def require(permission: Permission) -> PermissionCheck:
    return PermissionCheck(permission)


CurrentUser = Annotated[User, Depends(require(Permission.AUTHENTICATED))]


def _checks(dep: Dependant) -> list[PermissionCheck]:
    found = [dep.call] if isinstance(dep.call, PermissionCheck) else []
    for sub in dep.dependencies:
        found += _checks(sub)
    return found


def api_routes(routes: Sequence[BaseRoute]) -> Iterator[RouteContext]:
    """Every API route of an app with its effective path and dependencies (included routers expanded)."""
    for rc in iter_route_contexts(list(routes)):
        if isinstance(rc.original_route, APIRoute):
            yield rc


def route_permission(route: RouteContext | APIRoute) -> Permission | None:
    """The permission a route declares, ``None`` when it declares none (or more than one)."""
    checks = _checks(route.dependant)
    return checks[0].permission if len(checks) == 1 else None


def check_routes_declare_permissions(routes: Sequence[BaseRoute]) -> None:
    """Raise naming every API route that does not declare exactly one permission."""
    bad = [
        f"{sorted(r.methods or ())} {r.path} ({len(_checks(r.dependant))} permission declarations)"
        for r in api_routes(routes)
        if len(_checks(r.dependant)) != 1
    ]
    if bad:
        raise RuntimeError(
            "every route must declare exactly one permission with require(...) "
            "(server/core/permissions.py); offending: " + "; ".join(bad)
        )
