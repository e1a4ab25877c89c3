"""/api/users (who is who; admins set roles) and /api/audit (the audit log, admins only)."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict

from proposalflow import audit as audit_log
from proposalflow import users
from proposalflow.audit import AuditEntry
from proposalflow.errors import NotFound
from proposalflow.pagination import clamp_limit
from proposalflow.users import User

from ..deps import AdminUser, AuditDep, ConnDep, CurrentUser, SettingsDep
from ..errors import responses
from ..models import Page
from ..paging import CursorParam, LimitParam, page_response

router = APIRouter(tags=["users"], responses=responses(401, 403, 422, 429))

Role = Literal["viewer", "editor", "admin"]


class RoleChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Role


@router.get("/api/users/me", response_model=User)
def me(user: CurrentUser) -> User:
    """The caller, as the API knows them (role: the token's claim, else the stored role)."""
    return user


@router.get("/api/users", response_model=Page[User])
def list_users(request: Request, response: Response, conn: ConnDep, user: AdminUser, settings: SettingsDep,
               limit: LimitParam = None, cursor: CursorParam = None,
               sort: Literal["email", "-email", "created_at", "-created_at"] = "email",
               role: Role | None = None) -> Page[User]:
    page = users.list_users(conn, limit=clamp_limit(limit, 50, settings.api_page_max), cursor=cursor, sort=sort,
                            role=role)
    return page_response(request, response, page)


@router.get("/api/users/{user_id}", response_model=User, responses=responses(404))
def get_user(user_id: uuid.UUID, conn: ConnDep, user: CurrentUser) -> User:
    """Yourself, or anyone if you are an admin (others' records answer 404 to non-admins)."""
    if user.role != "admin" and user_id != user.id:
        raise NotFound(f"user {user_id} does not exist")
    return users.get_user(conn, user_id)


@router.put("/api/users/{user_id}/role", response_model=User, responses=responses(404))
def set_role(user_id: uuid.UUID, body: RoleChange, conn: ConnDep, user: AdminUser, audit: AuditDep) -> User:
    """The stored role, used when a user's token carries no role claim."""
    before = users.get_user(conn, user_id)
    changed = users.set_role(conn, user_id, body.role)
    audit.write(conn, "role", "users", user_id, before=before.role, after=changed.role)
    return changed


@router.get("/api/audit", response_model=Page[AuditEntry], tags=["audit"])
def audit_entries(
    request: Request, response: Response, conn: ConnDep, user: AdminUser, settings: SettingsDep,
    limit: LimitParam = None, cursor: CursorParam = None,
    resource: Annotated[str | None, Query(max_length=50)] = None,
    resource_id: Annotated[str | None, Query(max_length=100)] = None,
    actor_id: uuid.UUID | None = None,
    request_id: Annotated[str | None, Query(max_length=64)] = None,
) -> Page[AuditEntry]:
    """Every write and flow trigger, newest first."""
    page = audit_log.list_entries(conn, limit=clamp_limit(limit, 50, settings.api_page_max), cursor=cursor,
                                  resource=resource, resource_id=resource_id, actor_id=actor_id, request_id=request_id)
    return page_response(request, response, page)
