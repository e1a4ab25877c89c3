"""Proposals one at a time, for the API: create a placeholder, list in keyset pages, edit what a
person may edit, delete.

A proposal's content and versions are made by generation and revision (`service.generate`,
`service.revise`), its status only by the status machine (`status.transition`), its document link
by delivery — so none of those are input here. What a person edits directly is the title and the
generation inputs (brief, template); a new proposal starts as an empty draft that
`generate-proposal` (with `proposal_id`) fills.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

import psycopg
from pydantic import BaseModel, Field

from ..inputs import Input
from ..errors import Conflict, NotFound, ValidationFailed
from ..pagination import Page, SortKey, keyset
from .status import ProposalStatus
from .templates import get_template

SORT_KEYS = {
    "created_at": SortKey("p.created_at", "timestamp"),
    "updated_at": SortKey("p.updated_at", "timestamp"),
    "status_changed_at": SortKey("p.status_changed_at", "timestamp"),
}
ProposalSort = Literal["created_at", "-created_at", "updated_at", "-updated_at", "status_changed_at",
                       "-status_changed_at"]


class ProposalCreate(Input):
    client_id: uuid.UUID
    title: str | None = Field(None, max_length=300)
    brief: str | None = Field(None, max_length=20_000, description="Notes or an RFP excerpt for generation")
    template: str | None = Field(None, max_length=50, description="standard, short or rfp")


class ProposalUpdate(Input):
    """A full replace of the fields a person edits directly (left out: cleared)."""

    title: str | None = Field(None, max_length=300)
    brief: str | None = Field(None, max_length=20_000)
    template: str | None = Field(None, max_length=50)


class ProposalSummary(BaseModel):
    id: uuid.UUID
    client_id: uuid.UUID
    client_name: str
    status: str
    version: int
    title: str | None
    doc_link: str | None
    template: str | None
    created_at: datetime
    updated_at: datetime
    status_changed_at: datetime


_SELECT = """SELECT p.id, p.client_id, c.name, p.status, p.version, p.title, p.doc_link, p.template, p.created_at,
                    p.updated_at, p.status_changed_at
               FROM proposals p JOIN clients c ON c.id = p.client_id"""


def _summary(row: tuple) -> ProposalSummary:
    return ProposalSummary(**dict(zip(ProposalSummary.model_fields, row)))


def _template(name: str | None) -> str | None:
    return get_template(name).name if name and name.strip() else None


def _text(value: str | None) -> str | None:
    return value.strip() or None if value else None


def create_proposal(conn: psycopg.Connection, data: ProposalCreate) -> ProposalSummary:
    if conn.execute("SELECT 1 FROM clients WHERE id = %s", (data.client_id,)).fetchone() is None:
        raise ValidationFailed(f"client {data.client_id} does not exist",
                               [{"field": "client_id", "message": "no such client"}])
    row = conn.execute(
        f"""WITH inserted AS (
                INSERT INTO proposals (client_id, status, title, brief, template)
                VALUES (%s, 'draft', %s, %s, %s) RETURNING *)
            {_SELECT.replace('FROM proposals p', 'FROM inserted p')}""",
        (data.client_id, _text(data.title), _text(data.brief), _template(data.template))).fetchone()
    return _summary(row)


def update_proposal(conn: psycopg.Connection, proposal_id: str | uuid.UUID, data: ProposalUpdate) -> ProposalSummary:
    row = conn.execute(
        f"""WITH updated AS (
                UPDATE proposals SET title = %s, brief = %s, template = %s WHERE id = %s RETURNING *)
            {_SELECT.replace('FROM proposals p', 'FROM updated p')}""",
        (_text(data.title), _text(data.brief), _template(data.template), _uuid(proposal_id))).fetchone()
    if row is None:
        raise NotFound(f"proposal {proposal_id} does not exist")
    return _summary(row)


def get_summary(conn: psycopg.Connection, proposal_id: str | uuid.UUID) -> ProposalSummary:
    row = conn.execute(f"{_SELECT} WHERE p.id = %s", (_uuid(proposal_id),)).fetchone()
    if row is None:
        raise NotFound(f"proposal {proposal_id} does not exist")
    return _summary(row)


def list_proposals(conn: psycopg.Connection, *, limit: int, cursor: str | None = None, sort: str = "-updated_at",
                   client_id: uuid.UUID | None = None, status: str | None = None) -> Page[ProposalSummary]:
    page = keyset(sort, SORT_KEYS, limit=limit, cursor=cursor, id_column="p.id")
    clauses, params = [], []
    if client_id:
        clauses.append("p.client_id = %s")
        params.append(client_id)
    if status:
        try:
            clauses.append("p.status = %s")
            params.append(ProposalStatus(status).value)
        except ValueError:
            raise ValidationFailed(f"{status!r} is not a proposal status",
                                   [{"field": "status", "message": "unknown status"}]) from None
    if page.where:
        clauses.append(page.where)
        params += page.params
    where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
    rows = conn.execute(f"{_SELECT} {where} {page.order_limit}", params).fetchall()
    column = sort.lstrip("-")
    return page.page([_summary(r) for r in rows], lambda p: getattr(p, column), lambda p: p.id)


def delete_proposal(conn: psycopg.Connection, proposal_id: str | uuid.UUID) -> dict:
    """A sent proposal is the record of what a client received: archive it instead."""
    pid = _uuid(proposal_id)
    row = conn.execute("SELECT status FROM proposals WHERE id = %s FOR UPDATE", (pid,)).fetchone()
    if row is None:
        raise NotFound(f"proposal {proposal_id} does not exist")
    if row[0] in ("sent", "generating"):
        why = "it was sent to the client: archive it instead" if row[0] == "sent" else "it is being generated"
        raise Conflict(f"proposal {proposal_id} cannot be deleted: {why}")
    conn.execute("DELETE FROM proposals WHERE id = %s", (pid,))
    return {"id": str(pid)}


def _uuid(value: str | uuid.UUID) -> uuid.UUID:
    try:
        return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
    except ValueError:
        raise NotFound(f"proposal {value!r} does not exist (not a proposal id)") from None
