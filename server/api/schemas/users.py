"""Admin user management bodies."""

from __future__ import annotations

from pydantic import BaseModel, Field

from ...core.permissions import Role
from .auth import Email, UserOut


class UserCreate(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)
    role: Role = Role.VIEWER
    email: Email | None = None


class UserUpdate(BaseModel):
    role: Role | None = None
    is_active: bool | None = None
    password: str | None = Field(None, min_length=1, max_length=1024)


class UserList(BaseModel):
    items: list[UserOut]
    total: int
