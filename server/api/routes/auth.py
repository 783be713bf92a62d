"""``/auth``: register, login, refresh (rotating), logout, me, password change."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, status
from fastapi.security import OAuth2PasswordRequestForm

from ...core.errors import ForbiddenError, NotAuthenticatedError
from ...core.permissions import DEFAULT_ROLE, Permission, permissions_of
from ...db.models import User
from ..deps import CtxDep, CurrentUser, SessionDep, client_ip, require
from ..schemas.auth import MeOut, PasswordChange, RefreshRequest, RegisterRequest, TokenResponse, UserOut
from ..schemas.common import error_responses

router = APIRouter(prefix="/auth", tags=["auth"])
PUBLIC = [Depends(require(Permission.PUBLIC))]


@router.post(
    "/register",
    status_code=status.HTTP_201_CREATED,
    response_model=UserOut,
    dependencies=PUBLIC,
    responses=error_responses(403, 409, 422),
)
def register(body: RegisterRequest, session: SessionDep, ctx: CtxDep) -> User:
    """Create an account with the `viewer` role (only an admin grants other roles)."""
    if not ctx.settings.allow_registration:
        raise ForbiddenError(
            "self-registration is turned off; ask an admin for an account", code="registration_disabled"
        )
    user = ctx.auth.create_user(session, body.username, body.password, DEFAULT_ROLE, body.email)
    session.commit()
    return user


@router.post("/login", response_model=TokenResponse, dependencies=PUBLIC, responses=error_responses(401, 429))
def login(
    form: Annotated[OAuth2PasswordRequestForm, Depends()], request: Request, session: SessionDep, ctx: CtxDep
) -> TokenResponse:
    """OAuth2 password flow (form fields `username`, `password`): an access and a refresh token."""
    try:
        user = ctx.auth.authenticate(session, form.username, form.password, client_ip(request))
    except Exception:
        ctx.metrics.logins.labels(result="failed").inc()
        raise
    pair = ctx.auth.open_session(session, user, client_ip(request), request.headers.get("user-agent"))
    session.commit()
    ctx.metrics.logins.labels(result="ok").inc()
    return TokenResponse(**pair.__dict__)


@router.post("/refresh", response_model=TokenResponse, dependencies=PUBLIC, responses=error_responses(401))
def refresh(body: RefreshRequest, session: SessionDep, ctx: CtxDep) -> TokenResponse:
    """Spend a refresh token for a new pair. A token already spent revokes its whole session."""
    pair = ctx.auth.refresh(session, body.refresh_token)
    session.commit()
    return TokenResponse(**pair.__dict__)


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT, responses=error_responses(401))
def logout(user: CurrentUser, request: Request, session: SessionDep, ctx: CtxDep) -> None:
    """End this login session: its refresh tokens and access tokens stop working at once."""
    ctx.auth.revoke_session(session, request.state.session_id, "logout")
    session.commit()


@router.get("/me", response_model=MeOut, responses=error_responses(401))
def me(user: CurrentUser) -> MeOut:
    return MeOut(**UserOut.model_validate(user).model_dump(), permissions=permissions_of(user.role))


@router.post("/password", status_code=status.HTTP_204_NO_CONTENT, responses=error_responses(401, 403, 422))
def change_password(
    body: PasswordChange, user: CurrentUser, request: Request, session: SessionDep, ctx: CtxDep
) -> None:
    """Change your password; every session (this one included) is logged out."""
    try:
        ctx.auth.authenticate(session, user.username, body.current_password, client_ip(request))
    except NotAuthenticatedError:
        raise ForbiddenError("the current password is wrong", code="wrong_password") from None
    ctx.auth.set_password(session, user, body.new_password)
    session.commit()
