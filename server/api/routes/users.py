"""``/users``: account management (admin): list, create with a role, change role / state / password."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, status
from sqlalchemy import func, select

from ...core.errors import ConflictError
from ...core.permissions import Permission, Role
from ...db.models import User
from ..deps import CtxDep, SessionDep, require
from ..schemas.auth import UserOut
from ..schemas.common import DbId, DbOffset, error_responses
from ..schemas.users import UserCreate, UserList, UserUpdate

router = APIRouter(prefix="/users", tags=["users"])
Admin = Annotated[User, Depends(require(Permission.USERS_MANAGE))]


@router.get("", response_model=UserList)
def list_users(
    admin: Admin,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[DbOffset, Query()] = 0,
) -> UserList:
    total = session.scalar(select(func.count()).select_from(User)) or 0
    rows = session.scalars(select(User).order_by(User.id).limit(limit).offset(offset)).all()
    return UserList(items=[UserOut.model_validate(u) for u in rows], total=int(total))


@router.post("", status_code=status.HTTP_201_CREATED, response_model=UserOut, responses=error_responses(409, 422))
def create_user(body: UserCreate, admin: Admin, session: SessionDep, ctx: CtxDep) -> User:
    user = ctx.auth.create_user(session, body.username, body.password, body.role, body.email)
    session.commit()
    return user


@router.get("/{user_id}", response_model=UserOut, responses=error_responses(404))
def get_user(user_id: DbId, admin: Admin, session: SessionDep, ctx: CtxDep) -> User:
    return ctx.auth.get_user(session, user_id)


@router.patch("/{user_id}", response_model=UserOut, responses=error_responses(404, 409, 422))
def update_user(user_id: DbId, body: UserUpdate, admin: Admin, session: SessionDep, ctx: CtxDep) -> User:
    """Grant a role, (de)activate, or reset the password. Deactivating or a new password logs the user out."""
    user = ctx.auth.get_user(session, user_id)
    was_admin = user.role == Role.ADMIN.value and user.is_active
    if body.role is not None:
        user.role = body.role.value
    if body.is_active is not None:
        user.is_active = body.is_active
        if not body.is_active:
            ctx.auth.revoke_all(session, user.id, "deactivated")
    if body.password is not None:
        ctx.auth.set_password(session, user, body.password)
    session.flush()
    if was_admin and ctx.auth.count_admins(session) == 0:
        session.rollback()
        raise ConflictError("this change would leave no active admin", code="last_admin")
    session.commit()
    return user
