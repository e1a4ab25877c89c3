"""The audit log: one row per write and per flow trigger — who, what, when, which request.

Call `record` inside the transaction of the write it describes, so the change and its audit row
commit (or roll back) together.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from .pagination import Page, SortKey, keyset


@dataclass(frozen=True)
class Actor:
    id: uuid.UUID | None
    email: str | None
    role: str | None


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: datetime
    actor_id: uuid.UUID | None
    actor_email: str | None
    actor_role: str | None
    action: str
    resource: str
    resource_id: str | None
    request_id: str | None
    details: dict


def record(conn: psycopg.Connection, actor: Actor, action: str, resource: str, resource_id: Any = None, *,
           request_id: str | None = None, details: dict | None = None) -> None:
    conn.execute(
        """INSERT INTO audit_log (actor_id, actor_email, actor_role, action, resource, resource_id, request_id, details)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s)""",
        (actor.id, actor.email, actor.role, action, resource, None if resource_id is None else str(resource_id),
         request_id, Jsonb(details or {})),
    )


def entries(conn: psycopg.Connection, *, resource: str | None = None, resource_id: str | None = None,
            request_id: str | None = None, limit: int = 100) -> list[AuditEntry]:
    """Newest first."""
    clauses, params = [], []
    for column, value in (("resource", resource), ("resource_id", resource_id), ("request_id", request_id)):
        if value is not None:
            clauses.append(f"{column} = %s")
            params.append(value)
    where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
    rows = conn.execute(
        f"""SELECT id, at, actor_id, actor_email, actor_role, action, resource, resource_id, request_id, details
              FROM audit_log {where} ORDER BY id DESC LIMIT %s""", [*params, limit]).fetchall()
    return [AuditEntry(*r) for r in rows]


AUDIT_SORT_KEYS = {"id": SortKey("id", "int")}


def list_entries(conn: psycopg.Connection, *, limit: int, cursor: str | None = None, resource: str | None = None,
                 resource_id: str | None = None, actor_id: uuid.UUID | None = None,
                 request_id: str | None = None) -> Page[AuditEntry]:
    """Newest first, in keyset pages."""
    page = keyset("-id", AUDIT_SORT_KEYS, limit=limit, cursor=cursor)
    clauses, params = [], []
    for column, value in (("resource", resource), ("resource_id", resource_id), ("actor_id", actor_id),
                          ("request_id", request_id)):
        if value is not None:
            clauses.append(f"{column} = %s")
            params.append(value)
    if page.where:
        clauses.append(page.where)
        params += page.params
    where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
    rows = conn.execute(
        f"""SELECT id, at, actor_id, actor_email, actor_role, action, resource, resource_id, request_id, details
              FROM audit_log {where} {page.order_limit}""", params).fetchall()
    return page.page([AuditEntry(*r) for r in rows], lambda e: e.id, lambda e: e.id)
